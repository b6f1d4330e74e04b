// 矛盾纠纷（督办台账）: the open dispute assignments (统一指派, 三三制, 篇4) in a dialog, overdue
// first — level, township, incident, 稳控责任人, attempts at this level, deadline and the form the
// next supervision must take; a row opens its attempts, supervisions (督办) and joint meetings
// (联席会议), with forms to record either for keys the API lets write. Reads GET /v1/assignments
// and GET /v1/assignments/{id}; writes POST /v1/assignments/{id}/supervisions and
// POST /v1/joint-meetings; refreshed by assignment_* and joint_meeting_held while open.

import { label, t } from "./i18n.js";
import { h, refill } from "./dom.js";

const FORMS = ["letter", "meeting", "onsite", "notice"]; // weakest first, as the API orders them
const OPEN = ["active", "pending_approval"];


const say = (key, vars) => t(`disputes.${key}`, vars);

const view = {
  api: null,
  townshipName: (code) => code,
  incidentTitle: () => "",
  fmtTime: (s) => s,
  drills: () => false,
  canWrite: false,
  today: "",
  rows: [],
  titles: new Map(),
  chosen: null,
  forms: null, // the forms of the chosen assignment, kept across live refreshes
  message: "",
};

// Overdue first, then the nearest deadline.
function ordered(rows) {
  return [...rows].sort((a, b) => Number(b.overdue) - Number(a.overdue) || a.due_at.localeCompare(b.due_at));
}

async function loadRows() {
  const drills = view.drills() ? "" : "&exercise=false";
  const pages = await Promise.all(
    OPEN.map((status) => view.api(`/v1/assignments?status=${status}&limit=200${drills}`)),
  );
  return ordered(pages.flatMap((p) => p.items));
}

// Incident titles: the board's open incidents first, else fetched once.
async function fetchTitles(rows) {
  const missing = [...new Set(rows.map((r) => r.incident_id))].filter(
    (id) => !view.incidentTitle(id) && !view.titles.has(id),
  );
  await Promise.all(
    missing.slice(0, 40).map(async (id) => {
      try {
        view.titles.set(id, (await view.api(`/v1/incidents/${encodeURIComponent(id)}`)).title);
      } catch {
        view.titles.set(id, "");
      }
    }),
  );
}

function titleOf(id) {
  return view.incidentTitle(id) || view.titles.get(id) || say("incident");
}

function contactText(contact) {
  return contact ? `${contact.name}（${contact.phone}）` : say("unnamed");
}

function dueCell(row) {
  const due = view.fmtTime(row.due_at);
  if (!row.overdue) return h("td", { text: due });
  return h("td", { class: "dispute-overdue" }, due, " ", h("span", { class: "chip chip-missing", text: say("overdue") }));
}

function listRow(row) {
  const chosen = row.id === view.chosen;
  return h(
    "tr",
    {
      class: `dispute-row${row.overdue ? " dispute-late" : ""}${chosen ? " chosen" : ""}${row.exercise ? " drill" : ""}`,
      "data-assignment": row.id,
      tabindex: 0,
      onclick: () => choose(row.id),
      onkeydown: (event) => (event.key === "Enter" ? choose(row.id) : null),
    },
    h("td", { text: say("atLevel", { level: row.level_label }) }),
    h("td", { text: view.townshipName(row.township_code) || say("county") }),
    h(
      "td",
      {},
      titleOf(row.incident_id),
      row.status === "pending_approval" ? h("span", { class: "chip", text: say("pending") }) : "",
      row.exercise ? h("span", { class: "chip chip-exercise", text: say("drill") }) : "",
    ),
    h("td", { text: contactText(row.stability_contact) }),
    h("td", { class: "num", text: `${row.unresolved_at_level}/${row.attempts_required}` }),
    dueCell(row),
    h("td", { text: label("disputes.forms", row.supervision_required_form) }),
  );
}

function listTable(rows) {
  if (!rows.length) return h("p", { class: "empty", text: say("none") });
  const heads = ["level", "township", "incident", "contact", "attempts", "due", "nextForm"];
  return h(
    "table",
    { class: "epi-table dispute-table", id: "dispute-list" },
    h("thead", {}, h("tr", {}, ...heads.map((k) => h("th", { text: say(k) })))),
    h("tbody", {}, ...rows.map(listRow)),
  );
}

function section(id, title, items, line) {
  return h(
    "section",
    { id },
    h("h4", { text: `${title}（${items.length}）` }),
    items.length ? h("ul", { class: "info-items" }, ...items.map((item) => h("li", {}, line(item)))) : h("p", { class: "hint", text: say("nothingYet") }),
  );
}

function attemptLine(a) {
  const outcome = say(a.outcome === "resolved" ? "resolved" : "unresolved");
  return `${say("atLevel", { level: label("disputes.levels", a.level) })} · ${outcome} · ${view.fmtTime(a.at)} · ${a.by}${a.note ? `：${a.note}` : ""}`;
}

function supervisionLine(s) {
  return `${s.on} ${label("disputes.forms", s.form)}${say("supervised")} · ${s.by}${s.note ? `：${s.note}` : ""}`;
}

function meetingLine(m) {
  return [
    `${m.held_on} ${say("meetingBy", { who: m.convener })}`,
    `${say("attendees")}：${m.attendees.join("、")}`,
    `${say("decisions")}：${m.decisions.join("；")}`,
  ].join(" · ");
}

function detail(doc) {
  return h(
    "div",
    { id: "dispute-detail", "data-assignment": doc.id },
    h("h3", { text: titleOf(doc.incident_id) }),
    h(
      "p",
      { class: "hint", id: "dispute-facts" },
      say("facts", {
        level: doc.level_label,
        leader: doc.responsible_leader,
        unit: doc.responsible_unit,
        contact: doc.stability_contact_text,
        form: label("disputes.forms", doc.supervision_required_form),
      }),
    ),
    section("dispute-attempts", say("attemptsTitle"), doc.attempts, attemptLine),
    section("dispute-supervisions", say("supervisionsTitle"), doc.supervisions, supervisionLine),
    section("dispute-meetings", say("meetingsTitle"), doc.joint_meetings, meetingLine),
  );
}

function field(key, control, wide = false) {
  return h("label", { class: wide ? "wide" : null }, h("span", { text: say(key) }), control);
}

// Forms at least as strong as the one the API now asks for (a weaker one would be refused).
function formOptions(select, required) {
  const chosen = select.value;
  const allowed = FORMS.slice(FORMS.indexOf(required));
  select.replaceChildren(...allowed.map((f) => h("option", { value: f, text: label("disputes.forms", f) })));
  if (allowed.includes(chosen)) select.value = chosen;
}

function supervisionForm() {
  const form = h(
    "form",
    { id: "dispute-supervise-form", class: "info-form" },
    h("h3", { text: say("supervise") }),
    field("form", h("select", { name: "form" })),
    field("on", h("input", { name: "on", type: "date", required: true, value: view.today, max: view.today })),
    field("by", h("input", { name: "by", required: true, maxlength: 100 })),
    field("note", h("input", { name: "note", maxlength: 1000 })),
    h("button", { type: "submit", class: "btn btn-primary", text: say("save") }),
  );
  form.addEventListener("submit", recordSupervision);
  return form;
}

function meetingForm() {
  const form = h(
    "form",
    { id: "dispute-meeting-form", class: "info-form" },
    h("h3", { text: say("meeting") }),
    field("heldOn", h("input", { name: "held_on", type: "date", required: true, value: view.today, max: view.today })),
    field("convener", h("input", { name: "convener", required: true, maxlength: 100 })),
    field("attendeesHint", h("textarea", { name: "attendees", rows: 2, required: true })),
    field("decisionsHint", h("textarea", { name: "decisions", rows: 2, required: true })),
    field("note", h("input", { name: "note", maxlength: 2000 })),
    h("fieldset", { class: "checks dispute-covers" }, h("legend", { text: say("covers") })),
    h("button", { type: "submit", class: "btn btn-primary", text: say("save") }),
  );
  form.addEventListener("submit", recordMeeting);
  return form;
}

// The assignments a meeting may cover: the open ones listed, the chosen one ticked.
function coverChecks(fieldset) {
  const ticked = new Set([...fieldset.querySelectorAll("input:checked")].map((i) => i.value));
  if (!fieldset.querySelector("input")) ticked.add(view.chosen);
  const boxes = view.rows.map((row) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", name: "assignment_ids", value: row.id, checked: ticked.has(row.id) }),
      `${titleOf(row.incident_id)}（${say("atLevel", { level: row.level_label })}）`,
    ),
  );
  fieldset.replaceChildren(fieldset.querySelector("legend"), ...boxes);
}

function forms(doc) {
  if (!view.canWrite) return null;
  if (!view.forms || view.forms.dataset.assignment !== doc.id) {
    view.forms = h(
      "div",
      { id: "dispute-forms", "data-assignment": doc.id },
      supervisionForm(),
      meetingForm(),
      h("p", { id: "dispute-result", class: "hint", role: "status" }),
    );
  }
  formOptions(view.forms.querySelector("select[name=form]"), doc.supervision_required_form);
  coverChecks(view.forms.querySelector(".dispute-covers"));
  view.forms.querySelector("#dispute-result").textContent = view.message;
  return view.forms;
}

function lines(text) {
  return text.split(/\n+/).map((s) => s.trim()).filter(Boolean);
}

function showResult(message, bad) {
  view.message = message;
  const out = document.getElementById("dispute-result");
  out.textContent = message;
  out.classList.toggle("info-bad", bad);
}

async function post(path, body, done) {
  try {
    await view.api(path, { method: "POST", body });
    view.message = done;
    await refreshDisputes();
    showResult(done, false);
    return true;
  } catch (err) {
    showResult(err.message || String(err), true);
    return false;
  }
}

async function recordSupervision(event) {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(event.target).entries());
  const path = `/v1/assignments/${encodeURIComponent(view.chosen)}/supervisions`;
  const done = say("supervised.saved", { form: label("disputes.forms", data.form) });
  if (await post(path, data, done)) event.target.reset();
}

async function recordMeeting(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  const body = {
    held_on: data.get("held_on"),
    convener: data.get("convener"),
    attendees: lines(data.get("attendees")),
    decisions: lines(data.get("decisions")),
    assignment_ids: data.getAll("assignment_ids"),
    note: data.get("note"),
  };
  if (await post("/v1/joint-meetings", body, say("meeting.saved", { n: body.assignment_ids.length }))) {
    for (const name of ["convener", "attendees", "decisions", "note"]) form.elements[name].value = "";
  }
}

async function choose(id) {
  if (view.chosen !== id) view.message = "";
  view.chosen = id;
  await refreshDisputes();
}

// Loads the open assignments and the chosen one's record; errors show in the alert line.
export async function refreshDisputes() {
  const dialog = document.getElementById("dispute-dialog");
  if (!dialog?.open || !view.api) return;
  const error = dialog.querySelector(".panel-error");
  try {
    view.rows = await loadRows();
    await fetchTitles(view.rows);
    if (!view.rows.some((r) => r.id === view.chosen)) view.chosen = view.rows[0]?.id ?? null;
    const doc = view.chosen ? await view.api(`/v1/assignments/${encodeURIComponent(view.chosen)}`) : null;
    const body = document.getElementById("dispute-body");
    const kept = doc ? forms(doc) : null;
    refill(body, kept, listTable(view.rows), doc ? detail(doc) : null, kept);
    error.hidden = true;
  } catch (err) {
    error.textContent = err.message || String(err);
    error.hidden = false;
  }
}

// Opens the dialog with app.js's request and naming helpers; ``canWrite`` for keys that may
// record supervisions and joint meetings; ``drills`` tells whether 显示演练 is on.
export async function openDisputes(helpers) {
  Object.assign(view, helpers, { message: "", forms: null });
  const dialog = document.getElementById("dispute-dialog");
  document.getElementById("dispute-title").textContent = say("title");
  document.getElementById("dispute-hint").textContent = say("hint");
  document.getElementById("dispute-close").textContent = t("close");
  if (!dialog.open) dialog.showModal();
  await refreshDisputes();
}

// Wires the dialog's own controls once.
export function wireDisputes() {
  document.getElementById("dispute-close").addEventListener("click", () => document.getElementById("dispute-dialog").close(""));
}
