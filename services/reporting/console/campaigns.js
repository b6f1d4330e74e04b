// 专项行动: the county's special campaigns (篇1) in a dialog — the chosen campaign's period, rhythm
// and stages, and per participant its reports met, owed and overdue, with the next one due.
// Reads GET /v1/campaigns and GET /v1/campaigns/{id}; refreshed by campaign_* and report events
// while open. A township key reads only the campaigns its township takes part in, and only its own
// row of each (the API answers it so).

import { h, sayer } from "./dom.js";

const TEXT = {
  zh: {
    title: "专项行动",
    pick: "专项行动",
    none: "尚无专项行动",
    close: "关闭",
    period: "{from} 至 {to}",
    rhythm: "每{every}天报告一次，各阶段结束后{stage}天内报送阶段报告（{time} 前）",
    stages: "工作阶段",
    stage: "第{n}阶段 {name}（{end} 结束）",
    participant: "参加单位",
    periodic: "定期报告",
    staged: "阶段报告",
    next: "下次到期",
    overdue: "逾期未报",
    met: "已报 {met}/{all}",
    late: "迟报 {n}",
    nothing: "—",
    drill: "演练",
    ended: "已于 {at} 结束",
    status: { active: "进行中", ended: "已结束" },
  },
  en: {
    title: "Special campaigns",
    pick: "Campaign",
    none: "No special campaign yet",
    close: "Close",
    period: "{from} to {to}",
    rhythm: "A report every {every} days, a stage report within {stage} days after each stage (by {time})",
    stages: "Stages",
    stage: "Stage {n} {name} (ends {end})",
    participant: "Participant",
    periodic: "Periodic reports",
    staged: "Stage reports",
    next: "Next due",
    overdue: "Overdue",
    met: "filed {met}/{all}",
    late: "late {n}",
    nothing: "—",
    drill: "drill",
    ended: "ended {at}",
    status: { active: "running", ended: "ended" },
  },
};

const say = sayer(TEXT);


const view = { api: null, townshipName: (code) => code, fmtTime: (s) => s, campaigns: [], mine: null, drills: () => false };

// A campaign deadline's title in the overdue panel (no incident: the campaign names it).
export function campaignTitle(deadline) {
  return deadline.campaign_name ? `${say("title")}「${deadline.campaign_name}」` : "";
}

// One participant's tally of one kind: met of all, late, overdue, and the next one owed.
function tally(rows) {
  const open = rows.filter((d) => d.status === "pending" || d.status === "overdue");
  const met = rows.filter((d) => d.status === "met");
  return {
    text: rows.length ? say("met", { met: met.length, all: rows.filter((d) => d.status !== "cancelled").length }) : say("nothing"),
    late: met.filter((d) => d.late).length,
    overdue: rows.filter((d) => d.status === "overdue").length,
    next: open.map((d) => d.due_at).sort()[0],
  };
}

function cell(part) {
  return h(
    "td",
    { class: part.overdue ? "epi-missing" : "" },
    part.text,
    part.late ? ` · ${say("late", { n: part.late })}` : "",
    part.overdue ? h("span", { class: "chip chip-missing" }, ` ${say("overdue")} ${part.overdue}`) : "",
  );
}

function participantRows(campaign) {
  // A township key is answered its own deadlines only: its own row is the one to show.
  const shown = view.mine ? campaign.participants.filter((p) => p.code === view.mine) : campaign.participants;
  return shown.map((p) => {
    const mine = campaign.deadlines.filter((d) => d.participant === p.code);
    const periodic = tally(mine.filter((d) => d.kind === "campaign_report"));
    const staged = tally(mine.filter((d) => d.kind === "campaign_stage"));
    const next = [periodic.next, staged.next].filter(Boolean).sort()[0];
    return h(
      "tr",
      { class: periodic.overdue || staged.overdue ? "epi-row epi-missing" : "epi-row", "data-participant": p.code },
      h("td", { text: p.name || view.townshipName(p.code) }),
      cell(periodic),
      cell(staged),
      h("td", { text: next ? view.fmtTime(next) : say("nothing") }),
    );
  });
}

function render(campaign) {
  const body = document.getElementById("campaign-body");
  while (body.firstChild) body.removeChild(body.firstChild);
  const status = campaign.status === "ended"
    ? say("ended", { at: view.fmtTime(campaign.ended_at) })
    : say(`status.${campaign.status}`);
  // append() writes null as the text "null": a campaign without stages has no stage line.
  const parts = [
    h(
      "p",
      { class: "zero-date", id: "campaign-period" },
      `${say("period", { from: campaign.starts_on, to: campaign.ends_on })} · ${status}`,
      campaign.exercise ? [" · ", h("span", { class: "chip chip-exercise", id: "campaign-drill" }, say("drill"))] : null,
    ),
    h(
      "p",
      { class: "hint", id: "campaign-rhythm" },
      say("rhythm", { every: campaign.report_every_days, stage: campaign.stage_report_days, time: campaign.report_time }),
    ),
    campaign.stages.length
      ? h(
          "ul",
          { class: "chips", id: "campaign-stages", "aria-label": say("stages") },
          ...campaign.stages.map((s) => h("li", { class: "chip", text: say("stage", { n: s.number, name: s.name, end: s.ends_on }) })),
        )
      : null,
    h(
      "table",
      { class: "epi-table", id: "campaign-participants" },
      h("thead", {}, h("tr", {}, ...["participant", "periodic", "staged", "next"].map((k) => h("th", { text: say(k) })))),
      h("tbody", {}, ...participantRows(campaign)),
    ),
  ];
  body.append(...parts.filter(Boolean));
}

function fillPicker(items) {
  const picker = document.getElementById("campaign-pick");
  const chosen = picker.value;
  while (picker.firstChild) picker.removeChild(picker.firstChild);
  for (const c of items) {
    const tag = [say(`status.${c.status}`), c.exercise ? say("drill") : ""].filter(Boolean).join("·");
    picker.append(h("option", { value: c.id }, `${c.name}（${tag}）`));
  }
  if (items.some((c) => c.id === chosen)) picker.value = chosen;
  else picker.value = firstShown(items)?.id || "";
}

// The campaign the dialog opens on: the newest (the list comes newest first), a real one while
// the board hides drills.
function firstShown(items) {
  return (view.drills() ? items[0] : items.find((c) => !c.exercise)) || items[0];
}

// Loads the list and the chosen campaign into the dialog; errors show in its alert line.
export async function refreshCampaigns() {
  const dialog = document.getElementById("campaign-dialog");
  if (!dialog?.open || !view.api) return;
  const error = dialog.querySelector(".panel-error");
  try {
    const page = await view.api("/v1/campaigns?limit=50");
    fillPicker(page.items);
    const id = document.getElementById("campaign-pick").value;
    if (!id) {
      const body = document.getElementById("campaign-body");
      while (body.firstChild) body.removeChild(body.firstChild);
      body.append(h("p", { class: "empty", text: say("none") }));
    } else {
      render(await view.api(`/v1/campaigns/${encodeURIComponent(id)}`));
    }
    error.hidden = true;
  } catch (err) {
    error.textContent = err.message || String(err);
    error.hidden = false;
  }
}

// Opens the dialog with app.js's request and naming helpers.
export async function openCampaigns({ api, townshipName, fmtTime, mine = null, drills = () => false }) {
  Object.assign(view, { api, townshipName, fmtTime, mine, drills });
  const dialog = document.getElementById("campaign-dialog");
  document.getElementById("campaign-title").textContent = say("title");
  document.getElementById("campaign-pick-label").textContent = say("pick");
  document.getElementById("campaign-close").textContent = say("close");
  if (!dialog.open) dialog.showModal();
  await refreshCampaigns();
}

// Wires the dialog's own controls once.
export function wireCampaigns() {
  document.getElementById("campaign-pick").addEventListener("change", refreshCampaigns);
  document.getElementById("campaign-close").addEventListener("click", () => document.getElementById("campaign-dialog").close(""));
}
