// The admin API, as the UI uses it. The UI is served at <admin>/ui/, so the API is one level up
// (which also works when a proxy mounts the admin API under a prefix).

const BASE = new URL("..", document.baseURI);

export class ApiError extends Error {
  constructor(request, status, message) {
    super(message);
    this.request = request;
    this.status = status;
  }
}

async function call(method, path, body) {
  const what = `${method} ${path}`;
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(new URL(path.replace(/^\//, ""), BASE), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(what, 0, `the server could not be reached: ${e.message}`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const message = data && typeof data.message === "string" ? data.message : text || resp.statusText;
    throw new ApiError(what, resp.status, message);
  }
  return { status: resp.status, data };
}

// `POST /query`: rows as objects (columns with NULL values are absent, binary is hex).
export async function query(sql) {
  const { data } = await call("POST", "/query", { query: sql });
  return data.rows;
}

// A string literal for SQL.
export function sql(value) {
  return "'" + String(value).replaceAll("'", "''") + "'";
}

export async function services() {
  return (await call("GET", "/services")).data.services;
}

export async function deployments() {
  return (await call("GET", "/deployments")).data.deployments;
}

export async function version() {
  return (await call("GET", "/version")).data;
}

// `PATCH /invocations/{id}/{op}`; the answer's status (200 done, 202 accepted).
export async function manageInvocation(id, op) {
  return (await call("PATCH", `/invocations/${encodeURIComponent(id)}/${op}`)).status;
}

// `POST /services/{service}/state`: replaces the whole state of one key.
// `entries` maps state key names to Uint8Array values.
export async function setState(service, key, entries) {
  const newState = {};
  for (const [name, bytes] of Object.entries(entries)) newState[name] = Array.from(bytes);
  const body = { object_key: key, new_state: newState };
  return (await call("POST", `/services/${encodeURIComponent(service)}/state`, body)).status;
}
