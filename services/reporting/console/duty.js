// The duty office (值班室, 篇9) in the console: who is on duty in the header, and one dialog with
// four tabs — the roster (值班表), handovers (交接班), spot checks (抽查) and pushes to the city
// (向市上报). The board's helpers are handed in by app.js, so requests carry the same key.

import { t } from "./i18n.js";

const TABS = ["roster", "handover", "spot", "upward"];
let ui = null; // { api, h, clear, fmtTime, download, me, today, localInput, fromLocalInput, nowMs }

const $ = (id) => document.getElementById(id);

function office() {
  return ["operator", "admin"].includes(ui.me.role);
}

function checker() {
  return ["operator", "admin", "leader"].includes(ui.me.role);
}

function person(p) {
  return p && p.name ? `${p.name}（${p.phone}）` : "";
}

function showError(id, err) {
  const el = $(id);
  el.textContent = err ? `${t("error.action")}: ${err.message}` : "";
}

// ------------------------------------------------------------------ header

export async function refreshOnDuty() {
  if (!ui) return;
  const el = $("on-duty");
  try {
    const now = await ui.api("/v1/duty/now");
    const cur = now.current;
    el.classList.toggle("on-duty-empty", !cur || !cur.staffed);
    if (!cur || !cur.staffed) {
      el.textContent = t("duty.nobody", { shift: cur ? cur.label : "" });
    } else {
      const officers = cur.officers.map((o) => o.name).join("、");
      el.textContent = t("duty.header", {
        shift: cur.label,
        leader: cur.leader?.name || t("duty.none"),
        officers: officers || t("duty.none"),
      });
    }
    el.title = el.textContent; // the whole line, also when the header cuts it short
    el.hidden = false;
  } catch {
    el.hidden = true;
  }
}

// ------------------------------------------------------------------ roster

function mondayOf(day) {
  const d = new Date(`${day}T00:00:00Z`);
  const back = (d.getUTCDay() + 6) % 7;
  d.setUTCDate(d.getUTCDate() - back);
  return d.toISOString().slice(0, 10);
}

function personInputs(prefix, p, editable) {
  const { h } = ui;
  return h(
    "span",
    { class: "duty-person" },
    h("input", { name: `${prefix}-name`, value: p?.name || "", placeholder: t("duty.name"), maxlength: 50, disabled: !editable, "aria-label": t("duty.name") }),
    h("input", { name: `${prefix}-phone`, value: p?.phone || "", placeholder: t("duty.phone"), type: "tel", disabled: !editable, "aria-label": t("duty.phone") }),
  );
}

async function loadRoster() {
  const { api, h, clear } = ui;
  const week = mondayOf($("duty-week").value || ui.today());
  $("duty-week").value = week;
  showError("duty-roster-error", null);
  const data = await api(`/v1/duty/roster?week=${week}`);
  const body = $("duty-roster-body");
  clear(body);
  delete body.dataset.edited;
  const editable = office();
  for (const s of data.shifts) {
    const row = h(
      "tr",
      { dataset: { day: s.day, code: s.code }, class: s.staffed ? "" : "duty-unstaffed" },
      h("td", { text: `${s.day.slice(5)} ${s.label}` }),
      h("td", {}, personInputs("leader", s.leader, editable)),
      h("td", {}, personInputs("o1", s.officers[0], editable)),
      h("td", {}, personInputs("o2", s.officers[1], editable)),
      h("td", { text: s.staffed ? (s.handover_missing ? t("duty.handover.missing") : "") : t("duty.unstaffed") }),
    );
    body.append(row);
  }
  $("duty-roster-save").hidden = !editable;
  $("duty-roster-copy").hidden = !editable;
}

// A person's two fields, or null when both are empty. A phone without a name is marked and
// reported rather than dropped, so nobody typed in vanishes from the roster on save.
function readPerson(row, prefix, problems) {
  const nameInput = row.querySelector(`[name=${prefix}-name]`);
  const name = nameInput.value.trim();
  const phone = row.querySelector(`[name=${prefix}-phone]`).value.trim();
  nameInput.toggleAttribute("aria-invalid", Boolean(phone && !name));
  if (phone && !name) problems.push(nameInput);
  return name ? { name, phone } : null;
}

async function saveRoster() {
  const week = $("duty-week").value;
  const problems = [];
  const shifts = [...$("duty-roster-body").querySelectorAll("tr")].map((row) => ({
    day: row.dataset.day,
    code: row.dataset.code,
    leader: readPerson(row, "leader", problems),
    officers: [readPerson(row, "o1", problems), readPerson(row, "o2", problems)].filter(Boolean),
  }));
  if (problems.length) {
    const shift = problems[0].closest("tr").firstChild.textContent;
    $("duty-roster-status").textContent = "";
    $("duty-roster-error").textContent = t("duty.name.missing", { shift, n: problems.length });
    problems[0].focus();
    return;
  }
  try {
    await ui.api(`/v1/duty/roster/${week}`, { method: "PUT", body: { shifts } });
    $("duty-roster-status").textContent = t("duty.saved");
    await loadRoster();
    await refreshOnDuty();
  } catch (err) {
    showError("duty-roster-error", err);
  }
}

async function copyLastWeek() {
  const week = $("duty-week").value;
  try {
    await ui.api(`/v1/duty/roster/${week}/copy-last-week`, { method: "POST" });
    $("duty-roster-status").textContent = t("duty.copied");
    await loadRoster();
    await refreshOnDuty();
  } catch (err) {
    showError("duty-roster-error", err);
  }
}

// ------------------------------------------------------------------ handovers

function snapshotLine(snap) {
  const incidents = Object.values(snap.open_incidents_by_grade || {}).reduce((n, l) => n + l.length, 0);
  const zero = snap.zero_reports_today || {};
  return t("duty.snapshot", {
    incidents,
    overdue: (snap.overdue_deadlines || []).length,
    soon: (snap.soon_due_deadlines || []).length,
    approvals: (snap.pending_approvals || []).length,
    unacked: (snap.unacknowledged_warnings || []).length,
    plans: (snap.active_plans || []).length,
    dispatches: (snap.active_dispatches || []).length,
    missing: (zero.missing || []).length,
    requests: (snap.upstream_requests || []).length,
  });
}

// What waits for a leader, each with the label the service wrote (演练 marked on drill items).
function approvalList(items) {
  const { h } = ui;
  if (!items.length) return null;
  return h(
    "div",
    { class: "duty-approvals" },
    h("strong", { text: `${t("duty.approvals")}：` }),
    h("ul", {}, ...items.map((a) => h("li", { dataset: { kind: a.kind }, text: a.label || a.kind_label || "" }))),
  );
}

function handoverItem(rec) {
  const { h, fmtTime } = ui;
  const confirmed = Boolean(rec.confirmed_at);
  const item = h(
    "li",
    { class: "duty-record", dataset: { id: rec.id } },
    h("strong", { text: `${rec.shift_label}${rec.exercise ? " " + t("exercise") : ""}` }),
    h("span", { class: confirmed ? "duty-chip duty-chip-ok" : "duty-chip duty-chip-warn", text: confirmed ? t("duty.handover.confirmed") : t("duty.handover.open") }),
    h("p", { text: t("duty.handover.parties", {
      out: rec.outgoing_officer, at: fmtTime(rec.opened_at),
      in: rec.incoming_officer || "—", confirmed: confirmed ? fmtTime(rec.confirmed_at) : "—",
    }) }),
    h("p", { class: "hint", text: snapshotLine(rec.snapshot || {}) }),
    approvalList((rec.snapshot || {}).pending_approvals || []),
    rec.notes ? h("p", { text: `${t("duty.notes")}：${rec.notes}` }) : null,
    h("button", { type: "button", class: "btn", text: t("duty.docx"), onclick: () => ui.download(`/v1/duty/handovers/${rec.id}/document?format=docx`) }),
    h("button", { type: "button", class: "btn", text: t("duty.pdf"), onclick: () => ui.download(`/v1/duty/handovers/${rec.id}/document?format=pdf`) }),
  );
  if (!confirmed && office()) {
    const input = h("input", { name: "incoming", maxlength: 50, placeholder: t("duty.incoming"), "aria-label": t("duty.incoming") });
    item.append(
      input,
      h("button", {
        type: "button",
        class: "btn btn-primary",
        text: t("duty.confirm"),
        onclick: async () => {
          try {
            await ui.api(`/v1/duty/handovers/${rec.id}/confirm`, { method: "POST", body: { incoming_officer: input.value.trim() } });
            await loadHandovers();
          } catch (err) {
            showError("duty-handover-error", err);
          }
        },
      }),
    );
  }
  return item;
}

async function loadHandovers() {
  const { api, clear, h } = ui;
  showError("duty-handover-error", null);
  const data = await api("/v1/duty/handovers?limit=20");
  const list = $("duty-handover-list");
  clear(list);
  if (!data.items.length) list.append(h("li", { class: "empty", text: t("duty.handover.none") }));
  list.append(...data.items.map(handoverItem));
  $("duty-handover-form").hidden = !office();
}

async function openHandover(event) {
  event.preventDefault();
  const form = event.target;
  try {
    await ui.api("/v1/duty/handovers", {
      method: "POST",
      body: { outgoing_officer: form.outgoing.value.trim(), notes: form.notes.value.trim() },
    });
    form.reset();
    await loadHandovers();
  } catch (err) {
    showError("duty-handover-error", err);
  }
}

// ------------------------------------------------------------------ spot checks

async function loadSpotChecks() {
  const { api, clear, h, fmtTime } = ui;
  const month = $("duty-month").value || ui.today().slice(0, 7);
  $("duty-month").value = month;
  showError("duty-spot-error", null);
  const data = await api(`/v1/duty/monthly?month=${month}`);
  $("duty-score").textContent = t("duty.score", { score: data.score, formula: data.formula });
  const list = $("duty-spot-list");
  clear(list);
  if (!data.spot_checks.length) list.append(h("li", { class: "empty", text: t("duty.spot.none") }));
  for (const c of data.spot_checks) {
    const speed = c.rings !== null && c.rings !== undefined ? t("duty.rings", { n: c.rings }) : c.minutes !== null && c.minutes !== undefined ? t("duty.minutes", { n: c.minutes }) : "";
    list.append(
      h(
        "li",
        { class: "duty-record" },
        h("span", { class: c.result === "absent" ? "duty-chip duty-chip-bad" : "duty-chip duty-chip-ok", text: c.result_label }),
        ` ${fmtTime(c.called_at)} ${c.caller_unit || ""} ${c.caller} → ${c.answerer || "—"} ${speed}`,
      ),
    );
  }
  $("duty-spot-form").hidden = !checker();
}

async function recordSpotCheck(event) {
  event.preventDefault();
  const f = event.target;
  const body = {
    called_at: ui.fromLocalInput(f.called_at.value),
    caller: f.caller.value.trim(),
    caller_unit: f.caller_unit.value.trim(),
    answerer: f.answerer.value.trim(),
    result: f.result.value,
  };
  if (f.rings.value !== "") body.rings = Number(f.rings.value);
  try {
    await ui.api("/v1/duty/spot-checks", { method: "POST", body });
    f.reset();
    f.called_at.value = ui.localInput(ui.nowMs());
    await loadSpotChecks();
  } catch (err) {
    showError("duty-spot-error", err);
  }
}

// ------------------------------------------------------------------ pushes to the city

function pushStatus(p) {
  if (p.status === "delivered") return t("duty.push.delivered", { at: ui.fmtTime(p.received_at) }) + (p.late ? ` ${t("duty.push.late")}` : "");
  if (p.status === "held") return t("duty.push.held");
  return p.last_error ? t("duty.push.failed", { reason: p.last_error, n: p.attempts }) : t("duty.push.pending");
}

async function loadUpward() {
  const { api, clear, h, fmtTime } = ui;
  const data = await api("/v1/duty/upward?limit=100");
  $("duty-upward-state").textContent = data.enabled ? t("duty.upward.on", data.counts) : t("duty.upward.off");
  const list = $("duty-upward-list");
  clear(list);
  if (!data.items.length) list.append(h("li", { class: "empty", text: t("duty.upward.none") }));
  for (const p of data.items) {
    const bad = p.status !== "delivered" && p.last_error;
    list.append(
      h(
        "li",
        { class: "duty-record", dataset: { id: p.id } },
        h("span", { class: p.status === "delivered" ? (p.late ? "duty-chip duty-chip-warn" : "duty-chip duty-chip-ok") : bad ? "duty-chip duty-chip-bad" : "duty-chip", text: p.kind_label }),
        ` ${fmtTime(p.created_at)} ${p.document?.sitrep?.reportTitle || p.document?.warning?.headline || p.reference} · ${pushStatus(p)}`,
      ),
    );
  }
}

// ------------------------------------------------------------------ dialog

const LOAD = { roster: loadRoster, handover: loadHandovers, spot: loadSpotChecks, upward: loadUpward };

// Going back to the roster tab keeps what was typed and not yet saved (a new week, a save or
// reopening the dialog loads it afresh).
async function showTab(name, { keepEdits = false } = {}) {
  for (const tab of TABS) {
    $(`duty-tab-${tab}`).setAttribute("aria-selected", tab === name ? "true" : "false");
    $(`duty-pane-${tab}`).hidden = tab !== name;
  }
  if (keepEdits && name === "roster" && $("duty-roster-body").dataset.edited) return;
  try {
    await LOAD[name]();
  } catch (err) {
    if (err.status !== 401) showError(`duty-${name}-error`, err);
  }
}

export function openDuty(tab = "roster") {
  $("duty-dialog").showModal();
  const form = $("duty-spot-form");
  if (!form.called_at.value) form.called_at.value = ui.localInput(ui.nowMs());
  return showTab(tab);
}

export function setupDuty(deps) {
  ui = deps;
  // The roster is everyone's; handovers, spot checks and pushes are the duty office's.
  $("duty-btn").hidden = !["operator", "admin", "leader"].includes(ui.me.role);
  refreshOnDuty();
}

export function resetDuty() {
  ui = null;
  $("on-duty").hidden = true;
  $("duty-btn").hidden = true;
  if ($("duty-dialog").open) $("duty-dialog").close();
}

export function wireDuty() {
  $("duty-btn").addEventListener("click", () => openDuty("roster"));
  $("duty-close").addEventListener("click", () => $("duty-dialog").close());
  for (const tab of TABS) $(`duty-tab-${tab}`).addEventListener("click", () => showTab(tab, { keepEdits: true }));
  $("duty-roster-body").addEventListener("input", (event) => {
    $("duty-roster-body").dataset.edited = "1";
    if (event.target.value.trim()) event.target.removeAttribute("aria-invalid");
  });
  $("duty-week").addEventListener("change", () => showTab("roster"));
  $("duty-month").addEventListener("change", () => showTab("spot"));
  $("duty-roster-save").addEventListener("click", saveRoster);
  $("duty-roster-copy").addEventListener("click", copyLastWeek);
  $("duty-handover-form").addEventListener("submit", openHandover);
  $("duty-spot-form").addEventListener("submit", recordSpotCheck);
}
