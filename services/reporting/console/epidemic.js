// 传染病日报: one day's epidemic reports (传染病零报告) in a dialog — per township the reporting
// units that filed in full, partly or not at all, and the cases per watched disease. Reads
// GET /v1/epidemic/day; a township key sees its own township. Refreshed by the stream's
// epidemic_report_filed / epidemic_report_missed while open.

import { h, sayer } from "./dom.js";

const TEXT = {
  zh: {
    title: "传染病日报",
    date: "日期",
    due: "应报单位",
    filed: "已报齐",
    missing: "未报齐",
    cases: "病例",
    township: "乡镇",
    units: "已报齐/应报",
    lacking: "未报齐单位",
    diseases: "报告病例的病种",
    none: "各监测病种均为零报告",
    none_so_far: "已报单位均未报告病例（尚有 {n} 个单位未报齐）",
    nothing_filed: "尚无单位报送",
    all: "全部报齐",
    provisional: "{t} 截止（未到截止时间）",
    closed: "{t} 已截止",
    before: "该日早于平台启用日期，无需报送",
    drills: "演练报告 {n} 份（不计入）",
    close: "关闭",
    partial: "部分",
    unit_cases: "{n}例",
  },
  en: {
    title: "Epidemic reports",
    date: "Date",
    due: "Units due",
    filed: "Filed in full",
    missing: "Not in full",
    cases: "Cases",
    township: "Township",
    units: "Filed / due",
    lacking: "Units not in full",
    diseases: "Diseases with cases",
    none: "Zero cases for every watched disease",
    none_so_far: "No case from the units that filed ({n} units not yet in full)",
    nothing_filed: "No unit has filed yet",
    all: "All filed",
    provisional: "due {t} (not yet due)",
    closed: "closed {t}",
    before: "Before the platform's start: nothing owed",
    drills: "{n} drill reports (not counted)",
    close: "Close",
    partial: "partly",
    unit_cases: "{n} cases",
  },
};

const say = sayer(TEXT);


const view = { api: null, townshipName: (code) => code, day: "", fmtTime: (s) => s };

// Township rows in county order: units filed in full of units due, cases, who is missing.
function townshipRows(data) {
  const rows = new Map();
  for (const unit of data.units || []) {
    const row = rows.get(unit.township_code) || { due: 0, filed: 0, cases: 0, lacking: [] };
    row.due += 1;
    row.cases += unit.cases;
    if (unit.status === "filed") row.filed += 1;
    else row.lacking.push(unit.status === "partial" ? `${unit.name}（${say("partial")}）` : unit.name);
    rows.set(unit.township_code, row);
  }
  return [...rows.entries()].map(([code, row]) =>
    h(
      "tr",
      { class: row.lacking.length && data.units_due ? "epi-row epi-missing" : "epi-row" },
      h("td", { text: view.townshipName(code) }),
      h("td", { class: "num", text: `${row.filed}/${row.due}` }),
      h("td", { class: "num", text: String(row.cases) }),
      h("td", { text: data.units_due ? row.lacking.join("、") || say("all") : "" }),
    ),
  );
}

// What the day's filings say when no case was reported: 「各监测病种均为零报告」 only once every
// unit due has filed in full; before that, only what the units that filed have said.
function noCasesLine(data) {
  if (!data.units_missing) return say("none");
  const anyFiled = (data.units || []).some((u) => u.status === "filed" || u.status === "partial");
  return anyFiled ? say("none_so_far", { n: data.units_missing }) : say("nothing_filed");
}

function render(data) {
  const body = document.getElementById("epidemic-body");
  while (body.firstChild) body.removeChild(body.firstChild);
  const note = data.before_start
    ? say("before")
    : say(data.past_cutoff ? "closed" : "provisional", { t: view.fmtTime(data.cutoff_at) });
  const withCases = (data.diseases || []).filter((d) => d.cases > 0);
  // append() writes null as the text "null": the parts a day may lack are dropped first.
  const parts = [
    h("p", { class: "zero-date", id: "epidemic-date" }, `${data.date} · ${note}`),
    h(
      "div",
      { class: "zero-row", id: "epidemic-totals" },
      h("span", { class: "zero-label", text: `${say("due")} ${data.units_due}` }),
      h("span", { class: "zero-label ok", text: `${say("filed")} ${data.units_filed}` }),
      h("span", { class: "zero-label bad", text: `${say("missing")} ${data.units_missing}` }),
      h("span", { class: "zero-label", text: `${say("cases")} ${data.cases}` }),
    ),
    h("h3", { text: say("diseases") }),
    withCases.length
      ? h(
          "ul",
          { class: "chips", id: "epidemic-diseases" },
          ...withCases.map((d) =>
            h("li", { class: "chip chip-missing", text: `${d.name}（${d.class}） ${say("unit_cases", { n: d.cases })}` }),
          ),
        )
      : h("p", { class: "empty", id: "epidemic-diseases", text: noCasesLine(data) }),
    h(
      "table",
      { class: "epi-table", id: "epidemic-townships" },
      h(
        "thead",
        {},
        h("tr", {}, ...["township", "units", "cases", "lacking"].map((k) => h("th", { text: say(k) }))),
      ),
      h("tbody", {}, ...townshipRows(data)),
    ),
    data.exercise_reports ? h("p", { class: "hint", text: say("drills", { n: data.exercise_reports }) }) : null,
  ];
  body.append(...parts.filter(Boolean));
}

// Loads the chosen day into the dialog; errors show in its alert line.
export async function refreshEpidemic() {
  const dialog = document.getElementById("epidemic-dialog");
  if (!dialog?.open || !view.api) return;
  const error = dialog.querySelector(".panel-error");
  try {
    const day = document.getElementById("epidemic-day").value || view.day;
    render(await view.api(`/v1/epidemic/day?date=${encodeURIComponent(day)}`));
    error.hidden = true;
  } catch (err) {
    error.textContent = err.message || String(err);
    error.hidden = false;
  }
}

// Opens the dialog on ``day`` (the county's today), with app.js's request and naming helpers.
export async function openEpidemic({ api, townshipName, day, fmtTime }) {
  Object.assign(view, { api, townshipName, day, fmtTime });
  const dialog = document.getElementById("epidemic-dialog");
  document.getElementById("epidemic-title").textContent = say("title");
  document.getElementById("epidemic-day-label").textContent = say("date");
  document.getElementById("epidemic-close").textContent = say("close");
  const picker = document.getElementById("epidemic-day");
  picker.max = day || "";
  if (!picker.value) picker.value = day || "";
  if (!dialog.open) dialog.showModal();
  await refreshEpidemic();
}

// Wires the dialog's own controls once.
export function wireEpidemic() {
  document.getElementById("epidemic-day").addEventListener("change", refreshEpidemic);
  document.getElementById("epidemic-close").addEventListener("click", () => document.getElementById("epidemic-dialog").close(""));
}
