// 信息报送: information work of departments and townships in a dialog — each unit's quota this
// week and month with 未完成 flags, the month's rankings (departments and townships apart), the
// month's items, and a form for the county office to record adoption (采用) or a leader's
// instruction (批示). Reads GET /v1/information/quotas, /scores and /items; writes POST
// /v1/information/adoptions and /instructions. Refreshed by the stream's information_* events.

import { h, refill, sayer } from "./dom.js";

const TEXT = {
  zh: {
    title: "信息报送",
    date: "日期",
    close: "关闭",
    quotas: "配额完成情况（{week}，{month}）",
    unit: "单位",
    items_week: "信息（本周）",
    items_month: "信息（本月）",
    research: "调研（本月）",
    status: "状态",
    unfinished: "未完成 {n} 个单位",
    ranking: "{month} 信息工作考评（{status}）",
    departments: "部门",
    townships: "乡镇",
    rank: "名次",
    score: "得分",
    adoption: "采用",
    instruction: "批示",
    deduction: "扣分",
    list: "本月报送的信息",
    none: "本月尚无报送的信息",
    record: "记录采用或批示",
    target: "信息",
    type: "类型",
    level: "级别",
    by: "采用单位或刊物",
    leader: "批示领导",
    text: "批示内容",
    when: "日期",
    save: "记录",
    saved: "已记录：{s}",
    again: "此前已记录：{s}",
    county: "县级",
    city: "市级",
    province: "省级",
    national: "国家级",
  },
  en: {
    title: "Information",
    date: "Date",
    close: "Close",
    quotas: "Quotas ({week}, {month})",
    unit: "Unit",
    items_week: "Items (week)",
    items_month: "Items (month)",
    research: "Research (month)",
    status: "Status",
    unfinished: "{n} units behind",
    ranking: "{month} assessment ({status})",
    departments: "Departments",
    townships: "Townships",
    rank: "Rank",
    score: "Points",
    adoption: "Adopted",
    instruction: "Instructions",
    deduction: "Deducted",
    list: "Items this month",
    none: "No items this month yet",
    record: "Record adoption or an instruction",
    target: "Item",
    type: "Type",
    level: "Level",
    by: "Adopted by",
    leader: "Leader",
    text: "Instruction",
    when: "Date",
    save: "Record",
    saved: "Recorded: {s}",
    again: "Already recorded: {s}",
    county: "County",
    city: "City",
    province: "Province",
    national: "National",
  },
};
const LEVELS = ["county", "city", "province", "national"];

const say = sayer(TEXT);


// ``message``: the answer to the last recording, kept across the re-render that follows it.
// ``form``: the feedback form of this opening, kept across refreshes.
const view = { api: null, day: "", canRecord: false, message: "", form: null };

function table(id, heads, rows) {
  return h(
    "table",
    { class: "epi-table", id },
    h("thead", {}, h("tr", {}, ...heads.map((k) => h("th", { text: say(k) })))),
    h("tbody", {}, ...rows),
  );
}

function quotaCell(q) {
  const mark = q.unfinished ? "info-bad" : "info-ok";
  return h("td", { class: `num ${mark}`, text: `${q.submitted}/${q.required} ${q.status_label}` });
}

function quotaRows(rows) {
  return rows.map((row) =>
    h(
      "tr",
      { class: row.unfinished ? "epi-row epi-missing" : "epi-row" },
      h("td", { text: row.name }),
      quotaCell(row.items),
      quotaCell(row.research),
    ),
  );
}

// Departments (weekly items) beside townships (monthly items), research monthly for both.
function quotaTables(quotas) {
  const side = (kind, period) => {
    const rows = quotas.items.filter((r) => r.unit_kind === kind);
    const heads = ["unit", `items_${period}`, "research"];
    return h("div", {}, h("h4", { text: say(`${kind}s`) }), table(`info-quotas-${kind}`, heads, quotaRows(rows)));
  };
  return h("div", { class: "info-ranks", id: "info-quotas" }, side("department", "week"), side("township", "month"));
}

function rankRows(rows) {
  return rows.map((row) =>
    h(
      "tr",
      {},
      h("td", { class: "num", text: String(row.rank) }),
      h("td", { text: row.name }),
      h("td", { class: "num", text: String(row.total) }),
      h("td", { class: "num", text: String(row.parts.adoption) }),
      h("td", { class: "num", text: String(row.parts.instruction) }),
      h("td", { class: "num", text: String(row.parts.quota_deduction + row.parts.notice_deduction) }),
    ),
  );
}

function itemList(items) {
  if (!items.length) return h("p", { class: "empty", id: "info-items", text: say("none") });
  return h(
    "ul",
    { class: "info-items", id: "info-items" },
    ...items.map((item) =>
      h(
        "li",
        {},
        h("strong", { text: `${item.unit_name}〔${item.kind_label}〕` }),
        ` ${item.title} `,
        ...item.feedback.map((f) => h("span", { class: "chip", text: `${f.label}${f.type_label}` })),
      ),
    ),
  );
}

function select(name, options) {
  return h("select", { name }, ...options.map(([value, text]) => h("option", { value, text })));
}

function field(key, control) {
  return h("label", {}, h("span", { text: say(key) }), control);
}

// The form is built once per opening and kept across refreshes (a live event re-renders the
// dialog while someone may be typing): only its list of items is renewed, the choice kept.
function feedbackForm(items) {
  if (!view.canRecord || !items.length) return null;
  if (!view.form) {
    view.form = h(
      "form",
      { id: "info-feedback-form", class: "info-form" },
      h("h3", { text: say("record") }),
      field("target", select("target_id", [])),
      field("type", select("type", [["adoption", say("adoption")], ["instruction", say("instruction")]])),
      field("level", select("level", LEVELS.map((l) => [l, say(l)]))),
      field("by", h("input", { name: "by", maxlength: 60 })),
      field("leader", h("input", { name: "leader", maxlength: 50 })),
      field("text", h("input", { name: "text", maxlength: 1000 })),
      field("when", h("input", { name: "date", type: "date", value: view.day, max: view.day })),
      h("button", { type: "submit", class: "btn btn-primary", text: say("save") }),
      h("p", { id: "info-feedback-result", class: "hint", role: "status" }),
    );
    view.form.addEventListener("submit", recordFeedback);
  }
  const picker = view.form.querySelector("select[name=target_id]");
  const chosen = picker.value;
  picker.replaceChildren(...items.map((i) => h("option", { value: i.id, text: `${i.unit_name}：${i.title}` })));
  if (items.some((i) => i.id === chosen)) picker.value = chosen;
  view.form.querySelector("#info-feedback-result").textContent = view.message;
  return view.form;
}

// Posts the form as an adoption or an instruction; the answer's sentence shows below it.
async function recordFeedback(event) {
  event.preventDefault();
  const data = Object.fromEntries(new FormData(event.target).entries());
  const body = { target_kind: "item", target_id: data.target_id, level: data.level, date: data.date };
  const adoption = data.type === "adoption";
  Object.assign(body, adoption ? { by: data.by } : { leader: data.leader, text: data.text });
  try {
    const path = adoption ? "/v1/information/adoptions" : "/v1/information/instructions";
    const saved = await view.api(path, { method: "POST", body });
    view.message = say(saved.created ? "saved" : "again", { s: saved.summary });
    await refreshInformation();
  } catch (err) {
    view.message = err.message || String(err);
    document.getElementById("info-feedback-result").textContent = view.message;
  }
}

function render(quotas, scores, items) {
  const body = document.getElementById("info-body");
  const form = feedbackForm(items);
  refill(
    body,
    form,
    h("h3", { text: say("quotas", { week: quotas.week.label, month: quotas.month }) }),
    h("p", { class: "zero-label bad", id: "info-unfinished", text: say("unfinished", { n: quotas.unfinished }) }),
    quotaTables(quotas),
    h("h3", { text: say("ranking", { month: scores.month, status: scores.status_label }) }),
    h(
      "div",
      { class: "info-ranks" },
      h("div", {}, h("h4", { text: say("departments") }), rankTable("info-rank-departments", scores.departments)),
      h("div", {}, h("h4", { text: say("townships") }), rankTable("info-rank-townships", scores.townships)),
    ),
    h("h3", { text: say("list") }),
    itemList(items),
    form,
  );
}

function rankTable(id, rows) {
  return table(id, ["rank", "unit", "score", "adoption", "instruction", "deduction"], rankRows(rows));
}

// Loads the chosen day's quotas and its month's scores and items; errors show in the alert line.
export async function refreshInformation() {
  const dialog = document.getElementById("info-dialog");
  if (!dialog?.open || !view.api) return;
  const error = dialog.querySelector(".panel-error");
  try {
    const day = document.getElementById("info-day").value || view.day;
    const month = encodeURIComponent(day.slice(0, 7));
    const [quotas, scores, items] = await Promise.all([
      view.api(`/v1/information/quotas?date=${encodeURIComponent(day)}`),
      view.api(`/v1/information/scores?month=${month}`),
      view.api(`/v1/information/items?month=${month}`),
    ]);
    render(quotas, scores, items.items);
    error.hidden = true;
  } catch (err) {
    error.textContent = err.message || String(err);
    error.hidden = false;
  }
}

// Opens the dialog on ``day`` (the county's today); ``canRecord`` for the county office.
export async function openInformation({ api, day, canRecord }) {
  Object.assign(view, { api, day, canRecord, message: "", form: null });
  const dialog = document.getElementById("info-dialog");
  document.getElementById("info-title").textContent = say("title");
  document.getElementById("info-day-label").textContent = say("date");
  document.getElementById("info-close").textContent = say("close");
  const picker = document.getElementById("info-day");
  picker.max = day || "";
  if (!picker.value) picker.value = day || "";
  if (!dialog.open) dialog.showModal();
  await refreshInformation();
}

// Wires the dialog's own controls once.
export function wireInformation() {
  document.getElementById("info-day").addEventListener("change", refreshInformation);
  document.getElementById("info-close").addEventListener("click", () => document.getElementById("info-dialog").close(""));
}
