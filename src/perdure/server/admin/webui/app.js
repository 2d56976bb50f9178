// The web UI's entry point: a hash router over the pages.

import * as api from "./api.js";
import { errorBox, h } from "./dom.js";
import { invocationsPage } from "./invocations.js";
import { invocationPage } from "./invocation.js";
import { statePage } from "./state.js";
import { deploymentsPage, servicesPage } from "./catalog.js";

const PAGES = {
  invocations: invocationsPage,
  invocation: invocationPage,
  state: statePage,
  services: servicesPage,
  deployments: deploymentsPage,
};

// "#/invocation/inv_1…?x=y" -> { page: "invocation", arg: "inv_1…", params }
function currentRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const parts = path.split("/").map((p) => decodeURIComponent(p));
  return {
    page: parts[0] || "invocations",
    arg: parts.slice(1).join("/"),
    params: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)),
  };
}

async function render() {
  const r = currentRoute();
  const page = PAGES[r.page];
  for (const a of document.querySelectorAll("nav a")) {
    const active = a.dataset.page === r.page || (r.page === "invocation" && a.dataset.page === "invocations");
    a.classList.toggle("active", active);
  }
  const view = h("div", { class: "page", "data-page": r.page });
  document.getElementById("main").replaceChildren(view);
  if (!page) {
    view.append(h("h1", {}, "Not found"), h("p", {}, `There is no page "${r.page}".`));
    return;
  }
  try {
    await page(view, r);
  } catch (e) {
    view.append(errorBox(e, "Loading the page"));
  }
  view.dataset.loaded = "true";
}

async function showVersion() {
  try {
    const v = await api.version();
    document.getElementById("server-version").textContent = v.version;
  } catch (e) {
    document.getElementById("server-version").textContent = `version unknown (${e.message})`;
  }
}

window.addEventListener("hashchange", render);
render();
showVersion();
