// One invocation: its status, timestamps, retries and last failure, its journal as a
// timeline, and the operations cancel, kill, pause, resume and purge.

import * as api from "./api.js";
import { badge, confirmDialog, errorBox, fields, firstLine, h, link, notice, route, statusBadge, when } from "./dom.js";
import { describe, signalLabel } from "./journal.js";

const ACTIONS = {
  cancel: {
    label: "Cancel",
    text: "The handler gets a cancellation and ends with a terminal error; its compensations run.",
    allowed: (s) => s !== "completed",
  },
  kill: {
    label: "Kill",
    text: "The invocation ends at once with a failure, without running the handler again; calls it waits for are killed too.",
    allowed: (s) => s !== "completed",
  },
  pause: {
    label: "Pause",
    text: "The current attempt stops and no retry is made until the invocation is resumed.",
    allowed: (s) => ["running", "backing-off", "ready"].includes(s),
  },
  resume: {
    label: "Resume",
    text: "The invocation runs again now (a paused one with a fresh round of retries).",
    allowed: (s) => ["paused", "suspended", "backing-off"].includes(s),
  },
  purge: {
    label: "Purge",
    text: "The invocation, its journal and its result are deleted from the server.",
    allowed: (s) => s === "completed",
  },
};

export async function invocationPage(view, r) {
  const id = r.arg;
  const notices = h("div", { class: "notices" });
  const content = h("div");
  const refresh = h("button", { type: "button", class: "small", id: "refresh", onclick: () => load() }, "Refresh");
  view.append(
    h("p", { class: "crumbs" }, link("/invocations", "← Invocations"), " ", refresh),
    h("h1", {}, "Invocation ", h("span", { class: "mono", id: "invocation-id" }, id)),
    notices, content);

  async function act(op) {
    const a = ACTIONS[op];
    if (!(await confirmDialog(`${a.label} this invocation?`, `${id}: ${a.text}`, a.label))) return;
    try {
      const status = await api.manageInvocation(id, op);
      const what = status === 202 ? "accepted" : "done";
      notices.replaceChildren(notice(`${a.label}: ${what} (HTTP ${status}).`, "ok"));
    } catch (e) {
      notices.replaceChildren(errorBox(e, `${a.label}`));
    }
    await load();
  }

  // Each load builds the content afresh and swaps it in.
  let current = content;
  async function load() {
    const fresh = h("div", { id: "invocation-content" });
    try {
      await fill(fresh, id, act);
    } catch (e) {
      fresh.append(errorBox(e, "Loading the invocation"));
    }
    current.replaceWith(fresh);
    current = fresh;
  }
  await load();
}

async function fill(box, id, act) {
  const rows = await api.query(`SELECT * FROM sys_invocation WHERE id = ${api.sql(id)}`);
  if (!rows.length) {
    box.append(h("p", { class: "empty", id: "not-found" },
      "The server holds no invocation with this id (it may have been purged, or its retention ran out)."));
    return;
  }
  const inv = rows[0];
  const keyed = inv.target_service_ty && inv.target_service_ty !== "service";

  const buttons = Object.entries(ACTIONS).map(([op, a]) => h("button", {
    type: "button", class: op === "kill" || op === "purge" ? "danger" : "",
    "data-action": op, disabled: !a.allowed(inv.status), title: a.text,
    onclick: () => act(op),
  }, a.label));
  box.append(h("div", { class: "header-row" },
    h("div", {}, statusBadge(inv.status), " ",
      inv.completion_result ? badge(inv.completion_result, inv.completion_result === "failure" ? "bad" : "good") : null),
    h("div", { class: "actions" }, buttons)));

  const target = keyed
    ? h("span", {}, inv.target, " · ",
      link(route("/state", { service: inv.target_service_name, key: inv.target_service_key }), "state of this key"))
    : inv.target;
  const invokedBy = inv.invoked_by_id
    ? h("span", {}, `${inv.invoked_by} `, link(`/invocation/${encodeURIComponent(inv.invoked_by_id)}`, inv.invoked_by_id),
      inv.invoked_by_target ? ` (${inv.invoked_by_target})` : "")
    : inv.invoked_by;
  const waiting = [];
  if (inv.suspended_waiting_for_completions) waiting.push(`completions ${inv.suspended_waiting_for_completions}`);
  if (inv.suspended_waiting_for_signals) waiting.push(`signals ${inv.suspended_waiting_for_signals}`);
  box.append(h("section", { class: "card" }, fields([
    ["Target", target],
    ["Status", inv.status],
    ["Invoked by", invokedBy],
    ["Idempotency key", inv.idempotency_key],
    ["Created", when(inv.created_at)],
    ["Scheduled start", when(inv.scheduled_start_at)],
    ["Running since", when(inv.running_at)],
    ["Last attempt started", when(inv.last_start_at)],
    ["Modified", when(inv.modified_at)],
    ["Completed", when(inv.completed_at)],
    ["Result", inv.completion_result === "failure" ? `failure: ${inv.completion_failure}` : inv.completion_result],
    ["Retry count", inv.retry_count !== undefined ? String(inv.retry_count) : ""],
    ["Next retry", when(inv.next_retry_at)],
    ["Suspended, waiting for", waiting.join("; ")],
    ["Deployment", inv.pinned_deployment_id || inv.last_attempt_deployment_id],
    ["Protocol version", inv.pinned_service_protocol_version !== undefined ? String(inv.pinned_service_protocol_version) : ""],
    ["Journal", inv.journal_size !== undefined ? `${inv.journal_size} entries, ${inv.journal_commands_size ?? "?"} commands` : ""],
    ["Retention", [inv.completion_retention && `completion ${inv.completion_retention}`,
      inv.journal_retention && `journal ${inv.journal_retention}`].filter(Boolean).join(", ")],
  ])));

  if (inv.last_failure) {
    const related = inv.last_failure_related_command_name || inv.last_failure_related_command_type
      ? `at ${inv.last_failure_related_command_type || "command"}` +
        (inv.last_failure_related_command_name ? ` "${inv.last_failure_related_command_name}"` : "") +
        (inv.last_failure_related_command_index !== undefined ? ` (command #${inv.last_failure_related_command_index})` : "")
      : "";
    box.append(h("section", { class: "card failure", id: "last-failure" },
      h("h2", {}, "Last failure"),
      h("p", { class: "error-message" }, inv.last_failure),
      fields([
        ["Error code", inv.last_failure_error_code],
        ["Where", related],
        ["Attempts so far", inv.retry_count !== undefined ? String(inv.retry_count) : ""],
        ["Next retry", when(inv.next_retry_at)],
      ])));
  }

  box.append(h("h2", {}, "Journal"));
  const journal = await api.query(
    "SELECT index, entry_type, name, completed, invoked_id, invoked_target, sleep_wakeup_at, " +
    `promise_name, raw, appended_at FROM sys_journal WHERE id = ${api.sql(id)} ORDER BY index`);
  box.append(timeline(journal, inv));
}

function timeline(entries, inv) {
  const described = entries.map((e) => ({ row: e, d: describe(e) }));
  const byCompletion = new Map();
  for (const x of described) {
    if (x.row.entry_type.startsWith("Notification: ") && x.d.completionId !== undefined) {
      byCompletion.set(x.d.completionId, x);
    }
  }
  const list = h("ol", { class: "timeline", id: "journal" });
  if (!entries.length) {
    list.append(h("li", { class: "empty" }, "No journal entries (not started yet, or the journal was purged)."));
  }
  let commandIndex = 0;
  for (const x of described) {
    const { row, d } = x;
    const isCommand = row.entry_type.startsWith("Command: ");
    const thisCommand = isCommand ? commandIndex++ : undefined;
    const kind = row.entry_type.replace(/^(Command|Notification): /, "");
    const li = h("li", {
      class: `entry ${isCommand ? "command" : "notification"} kind-${kind.toLowerCase()}`,
      "data-index": row.index, "data-type": row.entry_type,
    });
    const head = h("div", { class: "entry-head" },
      h("span", { class: "entry-index" }, `#${row.index}`),
      h("span", { class: "entry-type" }, row.entry_type),
      row.name ? h("span", { class: "entry-name" }, row.name) : null,
      d.detail ? h("span", { class: "entry-detail" }, d.detail) : null);

    // The command's result, from the notification that completed it.
    let state = null;
    const lines = [];
    if (isCommand && d.resultCompletionId !== undefined && d.resultCompletionId !== null) {
      const note = byCompletion.get(d.resultCompletionId);
      if (note) {
        state = note.d.failure ? badge("failed", "bad") : badge("completed", "good");
        lines.push(resultLine(note.d, `result (entry #${note.row.index})`));
      } else if (inv.status === "completed") {
        state = badge("never completed", "");
      } else {
        state = badge(row.entry_type === "Command: Sleep" ? "sleeping" : "waiting", "wait");
      }
    } else if (d.failure) {
      state = badge("failed", "bad");
    }
    if (row.invoked_id) {
      lines.push(h("div", { class: "entry-line" }, "callee ",
        link(`/invocation/${encodeURIComponent(row.invoked_id)}`, row.invoked_id)));
    }
    if (!isCommand) {
      if (d.signal !== undefined) lines.push(h("div", { class: "entry-line" }, signalLabel(d.signal)));
      else if (d.completionId !== undefined) lines.push(h("div", { class: "entry-line muted" }, `completes completion ${d.completionId}`));
    }
    if (d.argument !== undefined) lines.push(h("div", { class: "entry-line" }, "argument: ", h("code", {}, d.argument)));
    if (d.value !== undefined || d.failure) lines.push(resultLine(d, isCommand ? VALUE_LABELS[row.entry_type] || "value" : "result"));
    if (inv.last_failure && thisCommand !== undefined && thisCommand === inv.last_failure_related_command_index) {
      li.classList.add("retrying");
      state = badge("retrying", "bad");
      lines.push(h("div", { class: "entry-line failure-text" },
        `failing here, ${inv.retry_count || 0} attempt(s): ${firstLine(inv.last_failure)}`));
    }
    head.append(h("span", { class: "entry-state" }, state, " ", h("span", { class: "muted" }, when(row.appended_at))));
    li.append(head, ...lines);
    list.append(li);
  }
  if (inv.last_failure) {
    list.append(h("li", { class: "entry retry", id: "journal-retry" },
      h("div", { class: "entry-head" },
        h("span", { class: "entry-index" }, "…"),
        h("span", { class: "entry-type" }, `Retry ${inv.retry_count || 0}`),
        h("span", { class: "entry-detail" }, inv.next_retry_at ? `next attempt at ${when(inv.next_retry_at)}` : "next attempt pending")),
      h("div", { class: "entry-line failure-text" },
        (inv.last_failure_error_code ? `[${inv.last_failure_error_code}] ` : "") + firstLine(inv.last_failure))));
  } else if (inv.status === "suspended") {
    list.append(h("li", { class: "entry waiting" }, h("div", { class: "entry-head" },
      h("span", { class: "entry-index" }, "…"), h("span", { class: "entry-type" }, "Suspended"),
      h("span", { class: "entry-detail" }, "waiting for a completion or signal"))));
  }
  return list;
}

const VALUE_LABELS = { "Command: Input": "input", "Command: Output": "output" };

function resultLine(d, label) {
  if (d.failure) {
    return h("div", { class: "entry-line failure-text" }, `${label}: failure [${d.failure.code}] ${d.failure.message}`);
  }
  if (d.value !== undefined) {
    return h("div", { class: "entry-line" }, `${label}: `,
      d.value === "" ? h("span", { class: "muted" }, "(empty)") : h("code", {}, d.value));
  }
  return h("div", { class: "entry-line muted" }, `${label}: done`);
}
