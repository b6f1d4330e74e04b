// 企业台账: dispatch's enterprise risk register (篇3) in a dialog — the enterprises of the county
// (a township key: its own) by township and risk level, 重大 in red first, with their latest
// inspections and any rectification overdue (整改逾期). Reads GET /v1/enterprises; refreshed by
// the stream's enterprise_registered / enterprise_rectification_overdue while open.

import { h, sayer } from "./dom.js";

const TEXT = {
  zh: {
    title: "企业台账",
    township: "乡镇",
    all_townships: "全部乡镇",
    level: "风险等级",
    all_levels: "全部等级",
    name: "企业",
    hazards: "危险类型",
    people: "负责人 / 安全员",
    inspections: "检查与整改",
    overdue_only: "只看整改逾期",
    none: "没有符合条件的企业",
    never: "未检查",
    totals: "在册 {n} 家 · 重大 {major} · 较大 {large} · 整改逾期 {overdue} 家",
    finding: "{date} {inspector}：{findings}",
    clean: "{date} {inspector}：未发现问题",
    deadline: "整改期限 {d}",
    done: "{d} 整改完成",
    close: "关闭",
  },
  en: {
    title: "Enterprise register",
    township: "Township",
    all_townships: "All townships",
    level: "Risk level",
    all_levels: "All levels",
    name: "Enterprise",
    hazards: "Hazards",
    people: "Responsible / safety officer",
    inspections: "Inspections",
    overdue_only: "Overdue rectification only",
    none: "No enterprise matches",
    never: "Not inspected",
    totals: "{n} registered · major {major} · large {large} · {overdue} overdue",
    finding: "{date} {inspector}: {findings}",
    clean: "{date} {inspector}: nothing found",
    deadline: "due {d}",
    done: "rectified {d}",
    close: "Close",
  },
};

const LEVELS = { major: "重大", large: "较大", general: "一般", low: "低" };
const LEVEL_CLASS = { major: "level-1", large: "level-2", general: "level-3", low: "level-4" };
const STATE_CLASS = { overdue: "chip chip-missing", open: "chip chip-open", rectified: "chip chip-filed", none: "chip chip-filed" };

const say = sayer(TEXT);


const view = { api: null, townships: [], townshipName: (code) => code, mine: null };

function person(p) {
  return p ? `${p.name} ${p.phone}` : "";
}

// One inspection as a line: what was found, its deadline and state (整改逾期 in red).
function inspectionLine(item) {
  const what = item.findings.length
    ? say("finding", { date: item.date, inspector: item.inspector, findings: item.findings.join("；") })
    : say("clean", { date: item.date, inspector: item.inspector });
  const due = item.rectified_on
    ? say("done", { d: item.rectified_on })
    : item.deadline
      ? say("deadline", { d: item.deadline })
      : "";
  return h(
    "li",
    { class: "ent-inspection" },
    h("span", { class: STATE_CLASS[item.rectification], text: item.rectification_label }),
    ` ${what}${due ? " · " + due : ""}`,
  );
}

function enterpriseRow(item) {
  const recent = item.inspections.slice(0, 3);
  return h(
    "tr",
    { class: item.rectification_flag ? "ent-row ent-overdue" : "ent-row", "data-id": item.id },
    h("td", {}, h("span", { class: `level ${LEVEL_CLASS[item.risk_level]}`, text: LEVELS[item.risk_level] })),
    h("td", {}, h("strong", { text: item.name }), item.rectification_flag ? h("span", { class: "marker marker-late", text: ` ${item.rectification_flag}` }) : null),
    h("td", { text: view.townshipName(item.township_code) }),
    h("td", { text: item.hazard_types.join("、") }),
    h("td", { class: "ent-people" }, person(item.responsible), h("br"), person(item.safety_officer)),
    h("td", {}, recent.length ? h("ul", { class: "ent-inspections" }, ...recent.map(inspectionLine)) : h("span", { class: "empty", text: say("never") })),
  );
}

function render(items) {
  const body = document.getElementById("enterprises-body");
  while (body.firstChild) body.removeChild(body.firstChild);
  const onlyOverdue = document.getElementById("enterprises-overdue").checked;
  const shown = onlyOverdue ? items.filter((i) => i.rectification_flag) : items;
  const count = (level) => items.filter((i) => i.risk_level === level).length;
  body.append(
    h("p", { class: "zero-row", id: "enterprises-totals", text: say("totals", {
      n: items.length, major: count("major"), large: count("large"),
      overdue: items.filter((i) => i.rectification_flag).length,
    }) }),
    shown.length
      ? h(
          "table",
          { class: "epi-table ent-table", id: "enterprises-table" },
          h("thead", {}, h("tr", {}, ...["level", "name", "township", "hazards", "people", "inspections"].map((k) => h("th", { text: say(k) })))),
          h("tbody", {}, ...shown.map(enterpriseRow)),
        )
      : h("p", { class: "empty", text: say("none") }),
  );
}

// Loads the register with the chosen filters (the API lists 重大 first); errors show in the
// dialog's alert line.
export async function refreshEnterprises() {
  const dialog = document.getElementById("enterprises-dialog");
  if (!dialog?.open || !view.api) return;
  const error = dialog.querySelector(".panel-error");
  const params = new URLSearchParams({ limit: "200" });
  const township = document.getElementById("enterprises-township").value;
  const level = document.getElementById("enterprises-level").value;
  if (township) params.set("township_code", township);
  if (level) params.set("risk_level", level);
  try {
    const page = await view.api(`/v1/enterprises?${params}`);
    render(page.items || []);
    error.hidden = true;
  } catch (err) {
    error.textContent = err.message || String(err);
    error.hidden = false;
  }
}

function fillSelect(id, first, options) {
  const select = document.getElementById(id);
  const chosen = select.value;
  while (select.firstChild) select.removeChild(select.firstChild);
  select.append(h("option", { value: "", text: first }), ...options.map(([v, t]) => h("option", { value: v, text: t })));
  select.value = chosen;
}

// Opens the dialog with app.js's request and naming helpers; a township key sees its own only.
export async function openEnterprises({ api, townships, townshipName, mine }) {
  Object.assign(view, { api, townships, townshipName, mine });
  document.getElementById("enterprises-title").textContent = say("title");
  document.getElementById("enterprises-close").textContent = say("close");
  document.getElementById("enterprises-overdue-label").textContent = say("overdue_only");
  const places = mine ? [[mine, townshipName(mine)]] : townships.map((code) => [code, townshipName(code)]);
  fillSelect("enterprises-township", mine ? townshipName(mine) : say("all_townships"), mine ? [] : places);
  fillSelect("enterprises-level", say("all_levels"), Object.entries(LEVELS));
  const dialog = document.getElementById("enterprises-dialog");
  if (!dialog.open) dialog.showModal();
  await refreshEnterprises();
}

// Wires the dialog's own controls once.
export function wireEnterprises() {
  for (const id of ["enterprises-township", "enterprises-level", "enterprises-overdue"]) {
    document.getElementById(id).addEventListener("change", refreshEnterprises);
  }
  document.getElementById("enterprises-close").addEventListener("click", () => document.getElementById("enterprises-dialog").close(""));
}
