// DOM helpers. Every piece of text goes in as a text node or through textContent, never as
// markup, so whatever the server returns (ids, keys, error messages, state values) stays text.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// A link inside the UI: `route` is a hash route like "/invocation/inv_1…".
export function link(route, ...children) {
  return h("a", { href: "#" + route }, ...children);
}

export function route(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") query.set(k, v);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}`.trim() }, text);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status || "unknown"}`, "data-status": status || "" }, status || "?");
}

// A definition list of [label, value] pairs; pairs with an empty value are left out.
export function fields(pairs) {
  const dl = h("dl", { class: "fields" });
  for (const [label, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    dl.append(h("dt", {}, label), h("dd", {}, value));
  }
  return dl;
}

export function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

// An error from the API (or the network), shown in the page.
export function errorBox(err, context) {
  const what = err && err.request ? err.request : context;
  const status = err && err.status ? `HTTP ${err.status}` : null;
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, [what, status].filter(Boolean).join(" → ") || "Error"),
    h("div", { class: "error-message" }, err && err.message ? err.message : String(err)));
}

export function notice(text, kind) {
  return h("div", { class: `notice ${kind || ""}`.trim(), role: "status" }, text);
}

// A modal confirmation; resolves true when the person confirms.
export function confirmDialog(title, text, okLabel) {
  return new Promise((resolve) => {
    const ok = h("button", { class: "danger", type: "button" }, okLabel);
    const back = h("button", { type: "button" }, "Back");
    const dialog = h("dialog", { class: "confirm" },
      h("h2", {}, title), h("p", {}, text), h("div", { class: "buttons" }, back, ok));
    ok.addEventListener("click", () => dialog.close("ok"));
    back.addEventListener("click", () => dialog.close("back"));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
    back.focus();
  });
}

// Timestamps as the API gives them (RFC 3339, UTC), made easier to read.
export function when(ts) {
  if (!ts) return "";
  return String(ts).replace("T", " ").replace(/Z$/, " UTC");
}

export function shorten(text, max) {
  const s = String(text);
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

// The first line of an error (the rest is often a stack trace).
export function firstLine(text) {
  const s = String(text || "");
  const i = s.indexOf("\n");
  return i < 0 ? s : s.slice(0, i);
}
