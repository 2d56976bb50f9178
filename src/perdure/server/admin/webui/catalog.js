// Services (with their handlers and settings) and deployments.

import * as api from "./api.js";
import { badge, errorBox, fields, h, link, route, table, when } from "./dom.js";

function retryText(p) {
  if (!p) return "";
  const parts = [];
  if (p.initial_interval) parts.push(`initial ${p.initial_interval}`);
  if (p.exponentiation_factor !== undefined && p.exponentiation_factor !== null) parts.push(`×${p.exponentiation_factor}`);
  if (p.max_interval) parts.push(`max interval ${p.max_interval}`);
  if (p.max_attempts !== undefined && p.max_attempts !== null) parts.push(`${p.max_attempts} attempts`);
  if (p.on_max_attempts) parts.push(`then ${p.on_max_attempts.toLowerCase()}`);
  return parts.join(", ");
}

export async function servicesPage(view) {
  view.append(h("h1", {}, "Services"));
  const services = (await api.services()).sort((a, b) => a.name.localeCompare(b.name));
  const counts = new Map();
  try {
    const rows = await api.query("SELECT target_service_name, status, count(*) AS n FROM sys_invocation " +
      "GROUP BY target_service_name, status");
    for (const r of rows) {
      if (!counts.has(r.target_service_name)) counts.set(r.target_service_name, []);
      counts.get(r.target_service_name).push(`${r.n} ${r.status}`);
    }
  } catch (e) {
    view.append(errorBox(e, "Counting invocations"));
  }
  if (!services.length) {
    view.append(h("p", { class: "empty" }, "No services are registered. Register a deployment with POST /deployments."));
    return;
  }
  for (const s of services) {
    const keyed = s.ty === "VirtualObject" || s.ty === "Workflow";
    const handlers = s.handlers.map((hd) => h("tr", { "data-handler": hd.name },
      h("td", { class: "mono" }, link(route("/invocations", { service: s.name, handler: hd.name }), hd.name)),
      h("td", {}, hd.ty || "—"),
      h("td", {}, hd.public ? "yes" : "no"),
      h("td", {}, hd.input_description || ""),
      h("td", {}, hd.output_description || ""),
      h("td", {}, retryText(hd.retry_policy))));
    view.append(h("section", { class: "card service", "data-service": s.name },
      h("h2", {}, s.name, " ", badge(s.ty, "type"), s.public ? null : badge("private", "wait")),
      s.documentation ? h("p", {}, s.documentation) : null,
      fields([
        ["Deployment", h("span", { class: "mono" }, link("/deployments", s.deployment_id))],
        ["Revision", String(s.revision)],
        ["Invocations", h("span", {}, link(route("/invocations", { service: s.name }), (counts.get(s.name) || ["none"]).join(", ")))],
        ["State", keyed ? link(route("/state", { service: s.name }), "keys with state") : ""],
        ["Journal retention", s.journal_retention],
        ["Idempotency retention", s.idempotency_retention],
        ["Workflow retention", s.workflow_completion_retention],
        ["Inactivity timeout", s.inactivity_timeout],
        ["Abort timeout", s.abort_timeout],
        ["Lazy state", s.enable_lazy_state === undefined || s.enable_lazy_state === null ? "" : String(s.enable_lazy_state)],
        ["Retry policy", retryText(s.retry_policy)],
      ]),
      table(["Handler", "Type", "Public", "Input", "Output", "Retry overrides"], handlers, { class: "list handlers" })));
  }
}

export async function deploymentsPage(view) {
  view.append(h("h1", {}, "Deployments"));
  const deployments = await api.deployments();
  if (!deployments.length) {
    view.append(h("p", { class: "empty" }, "No deployments are registered. Register one with POST /deployments {\"uri\": …}."));
    return;
  }
  for (const d of deployments) {
    view.append(h("section", { class: "card deployment", "data-deployment": d.id },
      h("h2", { class: "mono" }, d.id),
      fields([
        ["Endpoint", d.uri || d.arn],
        ["Protocol", [d.protocol_type, d.http_version].filter(Boolean).join(", ")],
        ["Service protocol versions", `${d.min_protocol_version}–${d.max_protocol_version}`],
        ["SDK", d.sdk_version],
        ["Created", when(d.created_at)],
        ["Services", h("span", {}, d.services.map((s, i) => [i ? ", " : "",
          link("/services", s.name), ` (revision ${s.revision})`]))],
      ])));
  }
}
