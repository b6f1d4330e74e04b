// 预警覆盖: a warning's reach in a dialog — townships and villages reached and acknowledged,
// people covered, enterprises in the area by risk level, and each village's state in a compact
// table (escalated villages first, in red; then those not yet acknowledged; then the rest).
// Reads GET /v1/warnings/{id}; a township key sees its own villages.

import { h, sayer } from "./dom.js";

const TEXT = {
  zh: {
    open: "覆盖",
    title: "预警覆盖",
    close: "关闭",
    townships: "乡镇 送达 {r}/{n}，签收 {a}",
    villages: "村 送达 {r}/{n}，确认 {a}，催办 {e}",
    people: "覆盖约 {p} 人（区域内 {q} 人）",
    no_population: "{n} 个村未登记人口",
    enterprises: "重大/较大风险企业 送达 {r}/{n}",
    area_enterprises: "区域内企业",
    village: "村（社区）",
    township: "乡镇",
    population: "人口",
    officer: "信息员",
    delivered: "送达",
    state: "确认",
    yes: "已送达",
    failed: "送达失败",
    waiting: "待送达",
    acked_link: "信息员已确认",
    acked_township: "乡镇代签",
    escalated: "已催办乡镇",
    pending: "未确认",
    none: "该预警区域内没有登记的村",
    risk: "{name}（{level}）",
  },
  en: {
    open: "Reach",
    title: "Warning reach",
    close: "Close",
    townships: "Townships reached {r}/{n}, acknowledged {a}",
    villages: "Villages reached {r}/{n}, acknowledged {a}, escalated {e}",
    people: "About {p} people covered ({q} in the area)",
    no_population: "{n} villages without population",
    enterprises: "Major/large-risk enterprises reached {r}/{n}",
    area_enterprises: "Enterprises in the area",
    village: "Village",
    township: "Township",
    population: "People",
    officer: "Officer",
    delivered: "Delivery",
    state: "Receipt",
    yes: "delivered",
    failed: "failed",
    waiting: "waiting",
    acked_link: "confirmed by officer",
    acked_township: "by township",
    escalated: "escalated",
    pending: "not yet",
    none: "No villages registered in this warning's area",
    risk: "{name} ({level})",
  },
};

const say = sayer(TEXT);


const view = { api: null, id: "" };

function stateText(v) {
  if (v.acked_at) return say(v.acked_via === "township" ? "acked_township" : "acked_link");
  return say(v.escalated ? "escalated" : "pending");
}

function rowClass(v) {
  if (v.acked_at) return "vr vr-acked";
  return v.escalated ? "vr vr-escalated" : "vr vr-pending";
}

function villageRows(states) {
  return states.map((v) =>
    h(
      "tr",
      { class: rowClass(v), "data-code": v.code },
      h("td", { text: v.name }),
      h("td", { text: v.township_name }),
      h("td", { class: "num", text: v.population ? String(v.population) : "—" }),
      h("td", { text: v.officer }),
      h("td", { text: say(v.delivered ? "yes" : v.delivery_failed ? "failed" : "waiting") }),
      h("td", { class: "vr-state", text: stateText(v) }),
    ),
  );
}

function render(w) {
  const body = document.getElementById("reach-body");
  while (body.firstChild) body.removeChild(body.firstChild);
  const r = w.reach;
  const lines = [
    say("townships", { r: r.townships.reached, n: r.townships.total, a: r.townships.acknowledged }),
    say("villages", { r: r.villages.reached, n: r.villages.total, a: r.villages.acknowledged, e: r.villages.escalated }),
    say("people", { p: r.people.covered, q: r.people.in_area }),
    r.people.villages_without_population ? say("no_population", { n: r.people.villages_without_population }) : null,
    r.enterprises.planned ? say("enterprises", { r: r.enterprises.reached, n: r.enterprises.planned }) : null,
  ].filter(Boolean);
  const states = r.village_states || [];
  const enterprises = w.enterprises || [];
  const parts = [
    h("p", { class: "reach-headline", text: w.headline || "" }),
    h("ul", { class: "reach-lines", id: "reach-lines" }, ...lines.map((line) => h("li", { text: line }))),
    enterprises.length
      ? h(
          "p",
          { class: "reach-enterprises", id: "reach-enterprises" },
          `${say("area_enterprises")}：`,
          enterprises.map((e) => say("risk", { name: e.name, level: e.risk_label })).join("、"),
        )
      : null,
    states.length
      ? h(
          "table",
          { class: "epi-table reach-table", id: "reach-villages" },
          h(
            "thead",
            {},
            h("tr", {}, ...["village", "township", "population", "officer", "delivered", "state"].map((k) => h("th", { text: say(k) }))),
          ),
          h("tbody", {}, ...villageRows(states)),
        )
      : h("p", { class: "empty", text: say("none") }),
  ];
  body.append(...parts.filter(Boolean));
}

// Loads the warning into the dialog; errors show in its alert line.
export async function refreshReach() {
  const dialog = document.getElementById("reach-dialog");
  if (!dialog?.open || !view.api) return;
  const error = dialog.querySelector(".panel-error");
  try {
    render(await view.api(`/v1/warnings/${encodeURIComponent(view.id)}`));
    error.hidden = true;
  } catch (err) {
    error.textContent = err.message || String(err);
    error.hidden = false;
  }
}

// Opens the dialog on one warning, with app.js's request helper.
export async function openReach(api, id) {
  Object.assign(view, { api, id });
  const dialog = document.getElementById("reach-dialog");
  document.getElementById("reach-title").textContent = say("title");
  document.getElementById("reach-close").textContent = say("close");
  if (!dialog.open) dialog.showModal();
  await refreshReach();
}

// The small button an active warning's line carries.
export function reachButton(api, id) {
  const button = h("button", { type: "button", class: "btn btn-ghost btn-reach", text: say("open") });
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    openReach(api, id);
  });
  return button;
}

// Wires the dialog's own controls once.
export function wireReach() {
  document.getElementById("reach-close").addEventListener("click", () => document.getElementById("reach-dialog").close(""));
}
