// The state of a virtual object or workflow key: view its entries, edit, add or delete them,
// and save (the admin API replaces the key's whole state at once).

import * as api from "./api.js";
import { errorBox, h, link, notice, route } from "./dom.js";
import { hexToBytes } from "./journal.js";

const encoder = new TextEncoder();

export async function statePage(view, r) {
  const service = r.params.get("service") || "";
  const key = r.params.get("key") ?? "";
  view.append(h("h1", {}, "State"));

  let keyed = [];
  try {
    keyed = (await api.services()).filter((s) => s.ty === "VirtualObject" || s.ty === "Workflow")
      .map((s) => s.name).sort();
  } catch (e) {
    view.append(errorBox(e, "Listing services"));
  }
  const serviceSelect = h("select", { name: "service", id: "state-service" },
    h("option", { value: "" }, "choose a virtual object or workflow"),
    keyed.map((n) => h("option", { value: n, selected: n === service }, n)));
  const keyInput = h("input", { name: "key", id: "state-key", placeholder: "key", value: key, list: "state-keys" });
  const keyList = h("datalist", { id: "state-keys" });
  const form = h("form", { class: "filters" },
    h("label", {}, "Service", serviceSelect), h("label", {}, "Key", keyInput), keyList,
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#" + route("/state", { service: serviceSelect.value, key: keyInput.value });
  });
  serviceSelect.addEventListener("change", () => {
    location.hash = "#" + route("/state", { service: serviceSelect.value });
  });
  view.append(form);
  if (!keyed.length) {
    view.append(h("p", { class: "empty" }, "No virtual objects or workflows are registered."));
    return;
  }
  if (!service) return;

  // The keys of this service that hold state.
  let keys = [];
  try {
    keys = (await api.query(`SELECT service_key, count(*) AS entries FROM state WHERE service_name = ${api.sql(service)} ` +
      "GROUP BY service_key ORDER BY service_key LIMIT 1000"));
  } catch (e) {
    view.append(errorBox(e, "Listing keys"));
  }
  keyList.replaceChildren(...keys.map((k) => h("option", { value: k.service_key })));
  if (!r.params.has("key")) {
    view.append(h("p", { class: "muted" }, keys.length
      ? `${keys.length} key(s) of ${service} hold state:` : `No key of ${service} holds state.`));
    view.append(h("ul", { class: "keys", id: "state-key-list" }, keys.map((k) => h("li", {},
      link(route("/state", { service, key: k.service_key }), k.service_key),
      h("span", { class: "muted" }, ` ${k.entries} entr${k.entries === 1 ? "y" : "ies"}`)))));
    return;
  }

  const notices = h("div", { class: "notices" });
  let current = h("div");
  view.append(
    h("h2", {}, `${service} / `, h("span", { class: "mono" }, key), " ",
      h("small", {}, link(route("/invocations", { service, key }), "invocations on this key"))),
    notices, current);

  async function load() {
    const fresh = h("div", { id: "state-editor" });
    try {
      await editor(fresh, service, key, save);
    } catch (e) {
      fresh.append(errorBox(e, "Reading state"));
    }
    current.replaceWith(fresh);
    current = fresh;
  }

  async function save(entries) {
    try {
      const status = await api.setState(service, key, entries);
      const n = Object.keys(entries).length;
      notices.replaceChildren(notice(`Saved ${n} entr${n === 1 ? "y" : "ies"} for ${service}/${key} (HTTP ${status}).`, "ok"));
    } catch (e) {
      notices.replaceChildren(errorBox(e, "Saving state"));
      return;
    }
    await load();
  }

  await load();
}

async function editor(box, service, key, save) {
  const rows = await api.query("SELECT key, value_utf8, value, value_length FROM state " +
    `WHERE service_name = ${api.sql(service)} AND service_key = ${api.sql(key)} ORDER BY key`);
  // The draft: one item per entry, edited in place until saved.
  const draft = rows.map((row) => ({
    name: row.key,
    binary: row.value_utf8 === undefined && (row.value_length || 0) > 0,
    original: hexToBytes(row.value || ""),
    text: row.value_utf8 ?? "",
    deleted: false,
  }));

  const body = h("tbody");
  const render = () => {
    body.replaceChildren(...draft.map((item) => {
      const valueCell = item.binary
        ? h("td", {}, h("code", { class: "binary" }, `binary, ${item.original.length} bytes (kept as is)`))
        : h("td", {}, h("textarea", {
          rows: Math.min(6, Math.max(1, item.text.split("\n").length)), "data-key": item.name,
          "aria-label": `value of ${item.name}`,
          oninput: (ev) => { item.text = ev.target.value; },
        }));
      const area = valueCell.querySelector("textarea");
      if (area) area.value = item.text;
      const del = h("button", { type: "button", class: "small", "data-delete": item.name,
        onclick: () => { item.deleted = !item.deleted; render(); } }, item.deleted ? "Undo" : "Delete");
      return h("tr", { class: item.deleted ? "deleted" : "", "data-key": item.name },
        h("td", { class: "mono" }, item.name), valueCell,
        h("td", { class: "num" }, String(item.binary ? item.original.length : encoder.encode(item.text).length)),
        h("td", {}, del));
    }));
  };
  render();
  if (!rows.length) box.append(h("p", { class: "empty", id: "state-empty" }, "This key holds no state yet."));
  box.append(h("table", { class: "list", id: "state-entries" },
    h("thead", {}, h("tr", {}, ["Name", "Value", "Bytes", ""].map((t) => h("th", {}, t)))), body));

  const newName = h("input", { id: "new-state-name", placeholder: "name" });
  const newValue = h("textarea", { id: "new-state-value", rows: 1, placeholder: "value, e.g. 42 or \"text\"" });
  const problem = h("span", { class: "failure-text" });
  const add = h("form", { class: "add-entry" }, newName, newValue, h("button", { type: "submit" }, "Add entry"), problem);
  add.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = newName.value;
    if (!name) { problem.textContent = "Give the entry a name."; return; }
    const existing = draft.find((d) => d.name === name);
    if (existing) { existing.text = newValue.value; existing.binary = false; existing.deleted = false; }
    else draft.push({ name, binary: false, original: new Uint8Array(), text: newValue.value, deleted: false });
    problem.textContent = "";
    newName.value = "";
    newValue.value = "";
    render();
  });
  const saveButton = h("button", { type: "button", id: "save-state", class: "primary" }, "Save state");
  saveButton.addEventListener("click", async () => {
    saveButton.disabled = true;
    const entries = {};
    for (const item of draft) {
      if (!item.deleted) entries[item.name] = item.binary ? item.original : encoder.encode(item.text);
    }
    try {
      await save(entries);
    } finally {
      saveButton.disabled = false;
    }
  });
  box.append(h("h3", {}, "Add an entry"), add,
    h("p", { class: "muted" }, "Values are the bytes the handlers store; with the default JSON serde that is JSON " +
      "text such as 42 or \"text\". Saving replaces the whole state of this key."),
    h("div", { class: "buttons" }, saveButton));
}
