// The invocation list, filtered by service, handler, key and status.

import * as api from "./api.js";
import { errorBox, firstLine, h, link, route, shorten, statusBadge, table, when } from "./dom.js";

const STATUSES = ["pending", "scheduled", "ready", "running", "backing-off", "suspended", "paused", "completed"];
const LIMIT = 500;

export async function invocationsPage(view, r) {
  const p = r.params;
  const filters = {
    service: p.get("service") || "",
    handler: p.get("handler") || "",
    key: p.get("key") || "",
    status: p.get("status") || "",
  };
  view.append(h("h1", {}, "Invocations"));

  let serviceNames = [];
  try {
    serviceNames = (await api.services()).map((s) => s.name).sort();
  } catch (e) {
    view.append(errorBox(e, "Listing services"));
  }

  const serviceSelect = h("select", { name: "service", id: "filter-service" },
    h("option", { value: "" }, "any service"),
    serviceNames.map((n) => h("option", { value: n, selected: n === filters.service }, n)));
  const handlerInput = h("input", { name: "handler", id: "filter-handler", placeholder: "any handler", value: filters.handler });
  const keyInput = h("input", { name: "key", id: "filter-key", placeholder: "any key", value: filters.key });
  const statusSelect = h("select", { name: "status", id: "filter-status" },
    h("option", { value: "" }, "any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const form = h("form", { class: "filters" },
    h("label", {}, "Service", serviceSelect),
    h("label", {}, "Handler", handlerInput),
    h("label", {}, "Key", keyInput),
    h("label", {}, "Status", statusSelect),
    h("button", { type: "submit" }, "Apply"),
    h("a", { href: "#/invocations", class: "button-link" }, "Clear"),
    h("button", { type: "button", id: "refresh", title: "Load the list again",
      onclick: () => window.dispatchEvent(new HashChangeEvent("hashchange")) }, "Refresh"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = "#" + route("/invocations", {
      service: serviceSelect.value, handler: handlerInput.value.trim(),
      key: keyInput.value.trim(), status: statusSelect.value,
    });
    if (location.hash === next) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = next;
  });
  view.append(form);

  const where = [];
  if (filters.service) where.push(`target_service_name = ${api.sql(filters.service)}`);
  if (filters.handler) where.push(`target_handler_name = ${api.sql(filters.handler)}`);
  if (filters.key) where.push(`target_service_key = ${api.sql(filters.key)}`);
  if (filters.status) where.push(`status = ${api.sql(filters.status)}`);
  const sql = "SELECT id, target, status, created_at, modified_at, retry_count, last_failure, " +
    "completion_result, completion_failure FROM sys_invocation" +
    (where.length ? " WHERE " + where.join(" AND ") : "") +
    ` ORDER BY created_at DESC LIMIT ${LIMIT + 1}`;
  let rows;
  try {
    rows = await api.query(sql);
  } catch (e) {
    view.append(errorBox(e, "Listing invocations"));
    return;
  }
  const more = rows.length > LIMIT;
  rows = rows.slice(0, LIMIT);
  view.append(h("p", { class: "muted", id: "invocation-count" },
    more ? `The newest ${LIMIT} invocations` : `${rows.length} invocation${rows.length === 1 ? "" : "s"}`));
  if (!rows.length) return;

  const body = rows.map((row) => {
    let outcome = "";
    if (row.status === "completed") outcome = row.completion_result === "failure" ? row.completion_failure || "failed" : "succeeded";
    else if (row.last_failure) outcome = `retry ${row.retry_count || 0}: ${firstLine(row.last_failure)}`;
    return h("tr", { "data-id": row.id },
      h("td", { class: "mono" }, link(`/invocation/${encodeURIComponent(row.id)}`, row.id)),
      h("td", {}, row.target),
      h("td", {}, statusBadge(row.status)),
      h("td", { class: "nowrap small", title: `modified ${when(row.modified_at)}` }, when(row.created_at)),
      h("td", { class: row.completion_result === "failure" || row.last_failure ? "failure-text" : "" },
        shorten(outcome, 140)));
  });
  view.append(table(["Id", "Target", "Status", "Created", "Outcome / last error"], body,
    { class: "list", id: "invocations" }));
}
