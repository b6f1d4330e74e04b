// The operator console: login, the county board, incident detail, approvals, live updates.
// Every piece of data is rendered with textContent (never innerHTML); the API key lives in
// sessionStorage and travels only in the Authorization header.

import { DICTS, label, lang, sentence, setLang, t } from "./i18n.js";
import { campaignTitle, openCampaigns, refreshCampaigns, wireCampaigns } from "./campaigns.js";
import { openEpidemic, refreshEpidemic, wireEpidemic } from "./epidemic.js";
import { openDisputes, refreshDisputes, wireDisputes } from "./disputes.js";
import { openEnterprises, refreshEnterprises, wireEnterprises } from "./enterprises.js";
import { openInformation, refreshInformation, wireInformation } from "./information.js";
import { refreshOnDuty, resetDuty, setupDuty, wireDuty } from "./duty.js";
import { reachButton, refreshReach, wireReach } from "./reach.js";
import { h } from "./dom.js";

const KEY_STORE = "yingji.console.key";
const LANG_STORE = "yingji.console.lang";
const EXERCISE_STORE = "yingji.console.exercise";
// Roles the API lets read and record dispute assignments (a township its own township's).
const MEDIATORS = ["operator", "leader", "township"];
const INCIDENT_READERS = ["leader", "operator", "department", "township"]; // intake's READERS
const PAGE_LIMIT = 100;
const MAX_PAGES = 10;
const REFRESH_MS = 60_000;
const STALL_MS = 45_000; // the server sends a heartbeat every 15 s
const FEED_MAX = 60;
const BACKLOG_HOURS = [1, 3, 12];
const DAY_MS = 24 * 3600_000;
const ACTIVE_DISPATCH = new Set(["ordered", "en_route", "on_scene"]);

const state = {
  key: null,
  me: null,
  context: null,
  townships: new Map(),
  incidents: new Map(),
  // Names of what events and orders refer to by id: teams, warehouses, stock items, and the
  // titles of incidents that are not open any more.
  teams: new Map(),
  warehouses: new Map(),
  items: new Map(),
  titles: new Map(),
  detailId: null,
  streamGen: 0,
  streamCtrl: null,
  live: false,
  netDown: false,
  refreshTimer: null,
  clockTimer: null,
  pendingRefresh: new Map(),
  feed: [],
  // Drills (演练) are hidden unless the duty officer asks for them; counts never include them.
  showExercise: false,
};

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ DOM helpers


function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function flash(el) {
  if (!el) return;
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
}

// ------------------------------------------------------------------ formatting

function zone() {
  return state.context?.timezone || "Asia/Shanghai";
}

// "07-06 16:00" in the county's time zone, in either language (never an ambiguous 06/07).
function fmtTime(value, withDate = true) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone: zone(),
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  const time = `${parts.hour}:${parts.minute}`;
  return withDate ? `${parts.month}-${parts.day} ${time}` : time;
}

function fmtDuration(ms) {
  const minutes = Math.max(0, Math.round(ms / 60000));
  if (minutes < 60) return t("minutes", { n: minutes });
  return t("hours", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

function townshipName(code) {
  if (!code) return "";
  return state.townships.get(code) || code;
}

function nowMs() {
  // The server's clock, so a board looked at in a drill (or a test) agrees with the data.
  if (state.context?.now) {
    return new Date(state.context.now).getTime() + (Date.now() - state.context.fetchedAt);
  }
  return Date.now();
}

// ------------------------------------------------------------------ banner and status

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

function setLive(live) {
  state.live = live;
  const el = $("live");
  el.hidden = !state.key;
  el.textContent = live ? t("live") : t("offline");
  el.classList.toggle("on", live);
  if (live && !state.netDown) hideBanner();
  if (!live && state.key) showBanner(t("reconnecting"));
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A write whose answer never came (the network dropped): sending the same write again reuses
// its Idempotency-Key, so a change the server already made is answered, not made twice.
let unanswered = null;

function idempotencyKey(method, path, text) {
  if (unanswered && unanswered.method === method && unanswered.path === path && unanswered.text === text) {
    return unanswered.key;
  }
  // crypto.randomUUID needs a secure context; county LANs often serve the console over http.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(path, { method = "GET", body, as = "json" } = {}) {
  if (!state.key) throw new ApiError(401, "unauthenticated", "not signed in");
  const headers = { Authorization: `Bearer ${state.key}` };
  const text = body === undefined ? undefined : JSON.stringify(body);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const write = method !== "GET";
  if (write) headers["Idempotency-Key"] = idempotencyKey(method, path, text);
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: text,
      cache: "no-store",
      credentials: "same-origin",
      redirect: "error",
    });
  } catch (err) {
    if (write) unanswered = { method, path, text, key: headers["Idempotency-Key"] };
    state.netDown = true;
    showBanner(t("reconnecting"));
    throw new ApiError(0, "network", String(err));
  }
  if (write) unanswered = null;
  if (state.netDown) {
    state.netDown = false;
    if (state.live) hideBanner();
  }
  if (res.status === 401) {
    logout(t("login.bad"));
    throw new ApiError(401, "unauthenticated", t("login.bad"));
  }
  if (!res.ok) {
    let code = "http_" + res.status;
    let message = res.statusText || code;
    try {
      const err = (await res.json()).error;
      if (err) {
        code = err.code || code;
        message = err.message || message;
        // Each field's reason once: not what the message already says, and without the
        // path "body" (the request as a whole).
        const extra = (err.fields || [])
          .filter((f) => f.reason && !message.includes(f.reason))
          .map((f) => (f.path && f.path !== "body" ? `${f.path}: ${f.reason}` : f.reason));
        if (extra.length) message += "（" + extra.join("；") + "）";
      }
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, code, message);
  }
  if (as === "file") return { blob: await res.blob(), name: fileName(res) };
  return as === "text" ? res.text() : res.json();
}

// The Chinese file name of a download (RFC 5987 filename*), else the plain one.
function fileName(res) {
  const header = res.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) return decodeURIComponent(star[1]);
  const plain = /filename="([^"]+)"/i.exec(header);
  return plain ? plain[1] : "download";
}

// Fetches a document with the key (a plain link would carry none) and saves it under its name.
async function download(path) {
  try {
    const { blob, name } = await api(path, { as: "file" });
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    if (err.status !== 401) showBanner(`${t("download.failed")}: ${err.message}`);
  }
}

// The day the summary buttons print: the date picker, else today in the county.
function summaryDate() {
  return $("summary-date").value || state.context?.today || "";
}

function downloadSummary(format) {
  const date = summaryDate();
  return download(`/v1/summaries/daily?date=${encodeURIComponent(date)}&format=${format}`);
}

function downloadBulletin(format) {
  if (!state.detailId) return undefined;
  return download(`/v1/reports?incident_id=${encodeURIComponent(state.detailId)}&format=${format}`);
}

// Every item of a cursor-paginated list (up to MAX_PAGES pages).
async function listAll(path, limit = PAGE_LIMIT, pages = MAX_PAGES) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < pages; i++) {
    const sep = path.includes("?") ? "&" : "?";
    let url = `${path}${sep}limit=${limit}`;
    if (cursor) url += `&cursor=${encodeURIComponent(cursor)}`;
    const page = await api(url);
    items.push(...(Array.isArray(page) ? page : page.items || []));
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

// ------------------------------------------------------------------ panels

function panelError(panel, err) {
  const box = panel.querySelector(".panel-error");
  if (!box) return;
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const what = err.status === 403 ? t("error.forbidden") : t("error.load");
  box.textContent = err.status ? `${what}: ${err.message}` : `${what}: ${t("reconnecting")}`;
  box.hidden = false;
}

function emptyItem(key) {
  return h("li", { class: "empty", text: t(key) });
}

function setCount(id, n) {
  $(id).textContent = n === null ? "" : `(${n})`;
}

function setTile(id, n, alarming = true) {
  const el = $(id);
  el.textContent = n === null ? "–" : String(n);
  el.parentElement.classList.toggle("nonzero", Boolean(n) && alarming);
}

function gradeBadge(grade) {
  const g = Number(grade);
  return h(
    "span",
    { class: `grade grade-${g}`, title: label("grade", g), "aria-label": label("grade", g) },
    h("span", { class: "grade-roman", text: label("gradeShort", g) }),
    h("span", { class: "grade-text", text: label("grade", g).replace(/^\S+\s/, "") }),
  );
}

function isDrill(item) {
  return Boolean(item?.exercise || item?.payload?.exercise);
}

// What a panel lists: drills only when asked for. Tiles and counts use real() alone.
function listed(items) {
  return state.showExercise ? items : items.filter((item) => !isDrill(item));
}

function real(items) {
  return items.filter((item) => !isDrill(item));
}

function drillMarker(item) {
  return isDrill(item) ? marker("exercise", t("exercise")) : null;
}

function marker(kind, text) {
  return h("span", { class: `marker marker-${kind}`, text });
}

function levelChip(level, color) {
  const lv = Number(level);
  return h("span", {
    class: `level level-${lv} color-${color || ""}`,
    text: lang() === "zh" ? `${label("level", lv)}预警` : label("level", lv),
  });
}

function warningItem(w, actions) {
  const areas = (w.areas || []).map(townshipName).join("、");
  return h(
    "li",
    { class: `item warn warn-${Number(w.level)}${isDrill(w) ? " drill" : ""}`, dataset: { id: w.id } },
    h(
      "div",
      { class: "item-head" },
      levelChip(w.level, w.color),
      h("span", { class: "item-title", text: w.headline || w.id }),
      w.exercise ? marker("exercise", t("exercise")) : null,
    ),
    h(
      "div",
      { class: "item-meta" },
      h("span", { text: label("hazard", w.hazard) }),
      areas ? h("span", { text: `${t("areas")}: ${areas}` }) : null,
      w.expires ? h("span", { text: `${t("expires")} ${fmtTime(w.expires)}` }) : null,
      w.version > 1 ? h("span", { text: t("version", { n: w.version }) }) : null,
    ),
    actions || null,
  );
}

async function loadWarnings() {
  const panel = $("panel-warnings");
  const list = $("list-warnings");
  try {
    const all = await listAll("/v1/warnings?status=active");
    const items = listed(all);
    items.sort((a, b) => a.level - b.level || String(b.effective).localeCompare(String(a.effective)));
    clear(list);
    list.append(
      ...(items.length
        ? items.map((w) => activeWarningItem(w, ackReport(w)))
        : [emptyItem("empty.warnings")]),
    );
    setCount("c-warnings", real(all).length);
    setTile("n-warnings", real(all).length);
    panelError(panel, null);
  } catch (err) {
    panelError(panel, err);
  }
}

// Who has acknowledged (签收) a warning's current version: one entry per township of its areas
// (a township key: its own), from the reach the list carries, so the panel asks nothing more.
function ackReport(w) {
  const signed = w.reach?.townships?.acknowledged_codes;
  if (!signed) return null;
  const mine = state.me?.role === "township" ? state.me.township_code : null;
  const codes = (w.areas || []).filter((code) => !mine || code === mine);
  return {
    townships: codes.map((code) => ({ township_code: code, acknowledged: signed.includes(code) })),
  };
}

// An active warning in one or two short lines (six fit on a 1366×768 screen): level, headline,
// expiry, and who has signed for it (签收) township by township.
function activeWarningItem(w, report) {
  const item = h(
    "li",
    { class: `item warn warn-compact warn-${Number(w.level)}${isDrill(w) ? " drill" : ""}`, dataset: { id: w.id } },
    h(
      "div",
      { class: "item-head" },
      levelChip(w.level, w.color),
      h("span", { class: "item-title", text: w.headline || label("hazard", w.hazard) }),
      w.exercise ? marker("exercise", t("exercise")) : null,
      w.expires ? h("span", { class: "warn-until", text: `${t("until")} ${fmtTime(w.expires)}` }) : null,
      w.reach?.villages?.total ? reachButton(api, w.id) : null,
    ),
    report ? ackLine(report) : h("div", { class: "item-meta", text: (w.areas || []).map(townshipName).join(t("list")) }),
  );
  item.title = `${label("hazard", w.hazard)} · ${t("areas")}: ${(w.areas || []).map(townshipName).join(t("list"))}`;
  return item;
}

const ACK_CHIPS = 4;

// 签收 a/b, then a chip per township (✓ signed, ✗ not yet); for a warning over many townships
// only those that have not signed are listed.
function ackLine(report) {
  const towns = report.townships || [];
  const acked = towns.filter((tw) => tw.acknowledged).length;
  const shown = towns.length <= ACK_CHIPS ? towns : towns.filter((tw) => !tw.acknowledged);
  const chips = shown.slice(0, 8).map((tw) => {
    const name = tw.township_name || townshipName(tw.township_code);
    const words = tw.acknowledged ? t("ack.acked") : t("ack.pending");
    return h("li", {
      class: `chip ack ${tw.acknowledged ? "ack-yes" : "ack-no"}`,
      dataset: { code: tw.township_code },
      title: `${name}${words}`,
      "aria-label": `${name}${words}`,
      text: `${tw.acknowledged ? "✓" : "✗"}${name}`,
    });
  });
  if (shown.length > 8) chips.push(h("li", { class: "chip ack-more", text: `+${shown.length - 8}` }));
  return h(
    "div",
    { class: "acks" },
    h("span", { class: "ack-summary", text: t("ack.summary", { acked, total: towns.length }) }),
    h("ul", { class: "chips", "aria-label": t("ack.list") }, ...chips),
  );
}

function canApprove() {
  return state.me?.role === "leader";
}

function seesPending() {
  return ["leader", "operator", "admin"].includes(state.me?.role);
}

async function loadPending() {
  const panel = $("panel-pending");
  if (!seesPending()) return;
  const list = $("list-pending");
  try {
    const all = await listAll("/v1/warnings?status=pending_approval");
    const items = listed(all);
    items.sort((a, b) => a.level - b.level);
    clear(list);
    list.append(
      ...(items.length
        ? items.map((w) => warningItem(w, canApprove() ? approvalButtons(w) : null))
        : [emptyItem("empty.pending")]),
    );
    setCount("c-pending", real(all).length);
    panelError(panel, null);
  } catch (err) {
    panelError(panel, err);
  }
}

function approvalButtons(w) {
  const status = h("span", { class: "action-status", role: "status" });
  const approve = h("button", {
    type: "button",
    class: "btn btn-primary",
    text: t("approve"),
    "aria-label": `${t("approve")}: ${w.headline || w.id}`,
    onclick: () => askApprove(w, status, [approve, reject]),
  });
  const reject = h("button", {
    type: "button",
    class: "btn btn-danger",
    text: t("reject"),
    "aria-label": `${t("reject")}: ${w.headline || w.id}`,
    onclick: () => askReject(w, status, [approve, reject]),
  });
  return h("div", { class: "actions" }, approve, reject, status);
}

// The leader reads the whole warning (description, 防御指南, areas, period) and confirms before
// it goes out; nothing is sent on the first click.
function askApprove(w, status, buttons) {
  const dialog = $("approve-dialog");
  const body = $("approve-body");
  clear(body);
  body.append(
    h("div", { class: "item-head" }, levelChip(w.level, w.color), h("strong", { id: "approve-headline", text: w.headline || "" })),
    h("dl", { class: "facts" },
      h("dt", { text: t("approve.areas") }),
      h("dd", { id: "approve-areas", text: (w.areas || []).map(townshipName).join(t("list")) }),
      h("dt", { text: t("approve.period") }),
      h("dd", { text: `${fmtTime(w.effective)} ${t("until")} ${fmtTime(w.expires)}` }),
      h("dt", { text: t("approve.description") }),
      h("dd", { id: "approve-description", text: w.description || "" }),
      h("dt", { text: t("approve.instruction") }),
      h("dd", { id: "approve-instruction", text: w.instruction || "" }),
    ),
  );
  dialog.onclose = async () => {
    if (dialog.returnValue !== "approve") return;
    buttons.forEach((b) => (b.disabled = true));
    try {
      await api(`/v1/warnings/${encodeURIComponent(w.id)}/approve`, {
        method: "POST",
        body: w.version ? { version: w.version } : {},
      });
      status.textContent = t("approved");
      scheduleRefresh(["pending", "warnings"], 0);
    } catch (err) {
      status.textContent = `${t("error.action")}: ${err.message}`;
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  dialog.returnValue = "";
  dialog.showModal();
  $("approve-cancel").focus();
}

function askReject(w, status, buttons) {
  const dialog = $("reject-dialog");
  $("reject-headline").textContent = w.headline || w.id;
  $("reject-reason").value = "";
  $("reject-error").textContent = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "reject") return;
    const reason = $("reject-reason").value.trim();
    buttons.forEach((b) => (b.disabled = true));
    try {
      await api(`/v1/warnings/${encodeURIComponent(w.id)}/reject`, {
        method: "POST",
        body: w.version ? { reason, version: w.version } : { reason },
      });
      status.textContent = t("rejected");
      scheduleRefresh(["pending"], 0);
    } catch (err) {
      status.textContent = `${t("error.action")}: ${err.message}`;
      buttons.forEach((b) => (b.disabled = false));
    }
  };
  dialog.returnValue = "";
  dialog.showModal();
  $("reject-reason").focus();
}

function incidentItem(inc) {
  const open = () => openDetail(inc.id);
  return h(
    "li",
    { class: `item inc inc-grade-${Number(inc.grade)}${isDrill(inc) ? " drill" : ""}`, dataset: { id: inc.id } },
    h(
      "button",
      {
        type: "button",
        class: "item-button",
        onclick: open,
        "aria-label": `${label("grade", inc.grade)} ${inc.title || inc.id}`,
      },
      h(
        "div",
        { class: "item-head" },
        gradeBadge(inc.grade),
        h("span", { class: "item-title", text: inc.title || inc.id }),
        inc.late ? marker("late", t("late")) : null,
        inc.escalated ? marker("escalated", t("escalated")) : null,
        inc.exercise ? marker("exercise", t("exercise")) : null,
      ),
      h(
        "div",
        { class: "item-meta" },
        h("span", { text: townshipName(inc.township_code) }),
        h("span", { text: label("category", inc.category) }),
        h("span", { text: `${t("detail.reported")} ${fmtTime(inc.reported_at)}` }),
      ),
    ),
  );
}

async function loadIncidents() {
  const panel = $("panel-incidents");
  const list = $("list-incidents");
  if (state.me && !readsIncidents()) return showIncidentsWithheld(); // signed out: nothing to say
  try {
    const all = await listAll("/v1/incidents?status=open");
    all.sort(
      (a, b) => a.grade - b.grade || String(b.reported_at).localeCompare(String(a.reported_at)),
    );
    state.incidents = new Map(all.map((i) => [i.id, i]));
    const items = listed(all);
    const open = real(all);
    clear(list);
    list.append(...(items.length ? items.map(incidentItem) : [emptyItem("empty.incidents")]));
    setCount("c-incidents", open.length);
    setTile("n-incidents", open.length);
    setTile("n-major", open.filter((i) => Number(i.grade) <= 3).length);
    panelError(panel, null);
  } catch (err) {
    panelError(panel, err);
  }
}

function incidentTitle(id) {
  return titleOf(id);
}

// Intake lets these roles read incidents; an admin key manages keys and settings, not cases.
function readsIncidents() {
  return INCIDENT_READERS.includes(state.me?.role);
}

// A key that may not read incidents gets one plain line in the panel, no tiles for them and
// dispatches without an incident to open (instead of a 403 per request).
function showIncidentsWithheld() {
  const list = $("list-incidents");
  clear(list);
  list.append(h("li", { class: "empty withheld", id: "incidents-withheld", text: t("withheld.incidents") }));
  setCount("c-incidents", null);
  panelError($("panel-incidents"), null);
}

// Titles of incidents no longer open (a dispatch or deadline may still name one), fetched once.
async function fetchTitles(ids) {
  if (!readsIncidents()) return;
  const missing = [...new Set(ids)].filter(
    (id) => id && !state.incidents.has(id) && !state.titles.has(id),
  );
  await Promise.all(
    missing.slice(0, 40).map(async (id) => {
      try {
        const inc = await api(`/v1/incidents/${encodeURIComponent(id)}`);
        state.titles.set(id, inc.title);
      } catch {
        /* not visible to this key: shown as 「（事件）」 */
      }
    }),
  );
}

// The names behind the ids events and orders carry: teams, warehouses and stock items.
async function loadNames() {
  const quietly = async (path) => {
    try {
      return await listAll(path);
    } catch {
      return [];
    }
  };
  const [teams, warehouses, stock] = await Promise.all([
    quietly("/v1/teams"),
    quietly("/v1/warehouses"),
    quietly("/v1/stock"),
  ]);
  state.teams = new Map(teams.map((tm) => [tm.id, tm.name]));
  state.warehouses = new Map(warehouses.map((w) => [w.id, w.name]));
  state.items = new Map();
  for (const line of stock) {
    const entry = { name: line.name, unit: line.unit || "" };
    state.items.set(`${line.warehouse_id}/${line.item_code}`, entry);
    if (!state.items.has(line.item_code)) state.items.set(line.item_code, entry);
  }
}

async function loadDispatches() {
  const panel = $("panel-dispatches");
  const list = $("list-dispatches");
  try {
    const all = await listAll("/v1/dispatches");
    const items = listed(all);
    await fetchTitles(items.map((d) => d.incident_id));
    const active = (d) => ACTIVE_DISPATCH.has(d.status);
    items.sort(
      (a, b) =>
        Number(active(b)) - Number(active(a)) ||
        String(b.ordered_at || b.created_at).localeCompare(String(a.ordered_at || a.created_at)),
    );
    const shown = items.slice(0, 40);
    clear(list);
    list.append(
      ...(shown.length
        ? shown.map((d) =>
            h(
              "li",
              {
                class: `item disp ${active(d) ? "disp-active" : "disp-done"}${isDrill(d) ? " drill" : ""}`,
                dataset: { id: d.id },
              },
              h(
                "button",
                {
                  type: "button",
                  class: "item-button",
                  disabled: !readsIncidents(),
                  onclick: () => readsIncidents() && openDetail(d.incident_id),
                },
                h(
                  "div",
                  { class: "item-head" },
                  h("span", { class: `status status-${d.status}`, text: label("status", d.status) }),
                  h("span", { class: "item-title", text: incidentTitle(d.incident_id) || t("dispatch.order") }),
                  drillMarker(d),
                ),
                h(
                  "div",
                  { class: "item-meta" },
                  h("span", { class: "disp-teams", text: `${t("dispatch.teams")}${t("colon")}${teamNames(d.team_ids) || "—"}` }),
                  d.resources?.length
                    ? h("span", { class: "disp-resources", text: resourceText(d.resources, t("dispatch.supplies")) })
                    : null,
                  d.ordered_at || d.created_at
                    ? h("span", { text: fmtTime(d.ordered_at || d.created_at) })
                    : null,
                ),
              ),
            ),
          )
        : [emptyItem("empty.dispatches")]),
    );
    const activeCount = real(all).filter(active).length;
    setCount("c-dispatches", activeCount);
    setTile("n-dispatches", activeCount);
    panelError(panel, null);
  } catch (err) {
    panelError(panel, err);
  }
}

async function loadDeadlines() {
  const panel = $("panel-deadlines");
  const list = $("list-deadlines");
  try {
    const all = await listAll("/v1/deadlines?status=overdue");
    const items = listed(all);
    items.sort((a, b) => String(a.due_at).localeCompare(String(b.due_at)));
    await fetchTitles(items.map((d) => d.incident_id));
    clear(list);
    const now = nowMs();
    list.append(
      ...(items.length
        ? items.map((d) =>
            h(
              "li",
              { class: `item dl${isDrill(d) ? " drill" : ""}`, dataset: { id: d.id || d.deadline_id || "" } },
              h(
                "button",
                {
                  type: "button",
                  class: "item-button",
                  disabled: !d.incident_id || !readsIncidents(),
                  onclick: () => d.incident_id && readsIncidents() && openDetail(d.incident_id),
                },
                h(
                  "div",
                  { class: "item-head" },
                  d.grade ? gradeBadge(d.grade) : null,
                  h("span", { class: "item-title", text: incidentTitle(d.incident_id) || campaignTitle(d) }),
                  marker("late", label("kind", d.kind)),
                  drillMarker(d),
                ),
                h(
                  "div",
                  { class: "item-meta" },
                  h("span", { text: d.participant_name || townshipName(d.township_code) }),
                  h("span", { text: `${t("deadline.due")} ${fmtTime(d.due_at)}` }),
                  h("span", {
                    class: "overdue-for",
                    text: t("deadline.overdue_for", { d: fmtDuration(now - new Date(d.due_at).getTime()) }),
                  }),
                  d.escalation > 1 ? h("span", { text: t("deadline.escalation", { n: d.escalation }) }) : null,
                ),
              ),
            ),
          )
        : [emptyItem("empty.deadlines")]),
    );
    setCount("c-deadlines", real(all).length);
    setTile("n-overdue", real(all).length);
    panelError(panel, null);
  } catch (err) {
    panelError(panel, err);
  }
}

function codeOf(entry) {
  return typeof entry === "string" ? entry : entry?.township_code || entry?.code || "";
}

async function loadZero() {
  const panel = $("panel-zero");
  const body = $("zero-body");
  try {
    const today = state.context?.today;
    const data = await api(`/v1/zero-reports?date=${encodeURIComponent(today)}`);
    const filed = data.filed || [];
    const missing = data.missing || [];
    const drills = state.showExercise ? data.exercise_filed || [] : [];
    clear(body);
    body.append(
      ...[
      h(
        "p",
        { class: "zero-date" },
        today,
        data.past_cutoff === false
          ? h("span", {
              class: "zero-provisional",
              text: ` · ${t("zero.provisional", { t: fmtTime(data.cutoff_at) })}`,
            })
          : null,
      ),
      h(
        "div",
        { class: "zero-row" },
        h("span", { class: "zero-label ok", text: `${t("zero.filed")} ${filed.length}` }),
        h("span", { class: "zero-label bad", text: `${t("zero.missing")} ${missing.length}` }),
      ),
      missing.length
        ? h(
            "ul",
            { class: "chips", "aria-label": t("zero.missing") },
            ...missing.map((m) => h("li", { class: "chip chip-missing", text: townshipName(codeOf(m)) })),
          )
        : h("p", { class: "empty", text: t("zero.all") }),
      filed.length
        ? h(
            "ul",
            { class: "chips", "aria-label": t("zero.filed") },
            ...filed.map((m) => h("li", { class: "chip chip-filed", text: townshipName(codeOf(m)) })),
          )
        : null,
      drills.length
        ? h(
            "ul",
            { class: "chips drill", "aria-label": t("zero.exercise") },
            ...drills.map((m) =>
              h("li", { class: "chip chip-exercise", text: `${t("exercise")} ${townshipName(codeOf(m))}` }),
            ),
          )
        : null,
      ].filter(Boolean),
    );
    setCount("c-zero", `${filed.length}/${filed.length + missing.length}`);
    await loadZeroTile(data);
    panelError(panel, null);
  } catch (err) {
    panelError(panel, err);
  }
}

// The tile counts the missing zero reports of the latest day whose cut-off has passed (today's
// are due only the next morning): a day not yet due never shows as missed.
async function loadZeroTile(today) {
  if (!state.context?.today || !today.cutoff_at) return;
  const cutoff = new Date(today.cutoff_at).getTime();
  const day = new Date(`${state.context.today}T00:00:00Z`);
  // Yesterday's reports were due at today's cut-off time, one day before today's cut-off.
  const back = nowMs() >= cutoff - DAY_MS ? 1 : 2;
  const due = new Date(day.getTime() - back * DAY_MS).toISOString().slice(0, 10);
  const data = await api(`/v1/zero-reports?date=${encodeURIComponent(due)}`);
  const missing = (data.missing || []).length;
  setTile("n-zero", missing, data.past_cutoff !== false);
  $("zero-due").textContent = t("zero.tile_day", { d: due.slice(5) });
  $("zero-due").hidden = false;
}

// Refused 「无事件」 zero reports for days on which the township had reported incidents: possible
// concealment (疑似瞒报), shown to the duty office with the incidents that contradict them.
async function loadConcealment() {
  const panel = $("panel-zero");
  const section = $("concealment");
  const list = $("list-concealment");
  const badge = $("badge-concealment");
  try {
    const data = await api("/v1/zero-reports/contradictions");
    const items = data.items || [];
    clear(list);
    list.append(...items.map(concealmentItem));
    section.hidden = items.length === 0;
    badge.hidden = items.length === 0;
    badge.textContent = t("concealment.badge", { n: items.length });
    panelError(panel, null);
  } catch (err) {
    panelError(panel, err);
  }
}

function concealmentItem(c) {
  const person = (p) => p?.name || "—";
  return h(
    "li",
    { class: "item concealment-item", dataset: { id: c.id } },
    h(
      "div",
      { class: "item-head" },
      marker("concealment", t("concealment.title")),
      h("span", { class: "item-title", text: c.name || townshipName(c.township_code) }),
      h("span", { class: "concealment-day", text: t("concealment.day", { d: c.date }) }),
    ),
    h(
      "div",
      { class: "item-meta" },
      h("span", { class: "concealment-attempt", text: t("concealment.attempt", { t: fmtTime(c.attempted_at) }) }),
      h("span", { text: t("concealment.signers", { r: person(c.reporter), a: person(c.approver) }) }),
    ),
    h(
      "ul",
      { class: "concealment-incidents", "aria-label": t("concealment.incidents") },
      ...(c.incidents || []).map((inc) =>
        h(
          "li",
          { dataset: { id: inc.id } },
          h(
            "button",
            { type: "button", class: "link", onclick: () => openDetail(inc.id) },
            inc.grade ? gradeBadge(inc.grade) : null,
            " ",
            inc.title || incidentTitle(inc.id),
            inc.reported_at ? ` · ${fmtTime(inc.reported_at)}` : "",
          ),
        ),
      ),
    ),
  );
}

const LOADERS = {
  warnings: loadWarnings,
  pending: loadPending,
  incidents: loadIncidents,
  dispatches: loadDispatches,
  deadlines: loadDeadlines,
  zero: loadZero,
  concealment: loadConcealment,
  epidemic: refreshEpidemic,
  enterprises: refreshEnterprises,
  reach: refreshReach,
  campaigns: refreshCampaigns,
  information: refreshInformation,
  disputes: refreshDisputes,
  detail: () => (state.detailId ? loadDetail(state.detailId) : null),
};
const PANEL_IDS = {
  warnings: "panel-warnings",
  pending: "panel-pending",
  incidents: "panel-incidents",
  dispatches: "panel-dispatches",
  deadlines: "panel-deadlines",
  zero: "panel-zero",
  concealment: "panel-zero",
  epidemic: "epidemic-dialog",
  enterprises: "enterprises-dialog",
  reach: "reach-dialog",
  campaigns: "campaign-dialog",
  information: "info-dialog",
  disputes: "dispute-dialog",
  detail: "detail",
};

async function loadContext() {
  const context = await api("/console/context");
  context.fetchedAt = Date.now();
  state.context = context;
  $("county-name").textContent = context.county?.name || "";
  $("today").textContent = context.today || "";
  const picker = $("summary-date");
  picker.max = context.today || "";
  if (!picker.value) picker.value = context.today || "";
}

// 北京时间 HH:MM:SS on the server's clock, in the county's zone.
function tickClock() {
  if (!state.context) return;
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone(),
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  }).format(new Date(nowMs()));
  $("clock-time").textContent = parts;
}

async function refreshAll() {
  try {
    await loadContext();
  } catch {
    /* shown by the banner; the panels still try */
  }
  // Incidents first: the other panels show incident titles.
  await loadIncidents();
  await Promise.all([loadWarnings(), loadPending(), loadDispatches(), loadDeadlines(), loadZero(), loadConcealment(), refreshOnDuty()]);
  if (state.detailId) await loadDetail(state.detailId);
}

// Coalesces bursts of events into one reload per panel, then flashes the panel.
function scheduleRefresh(panels, delay = 250) {
  for (const name of panels) {
    if (state.pendingRefresh.has(name)) continue;
    state.pendingRefresh.set(
      name,
      setTimeout(async () => {
        state.pendingRefresh.delete(name);
        if (!state.key) return;
        await LOADERS[name]();
        flash($(PANEL_IDS[name]));
      }, delay),
    );
  }
}

// ------------------------------------------------------------------ incident detail

function fact(dl, key, value) {
  if (value === null || value === undefined || value === "") return;
  dl.append(h("dt", { text: t(key) }), h("dd", {}, value));
}

// A response level or grade as Ⅰ–Ⅳ级 (Level I–IV in English).
function roman(n) {
  const value = Number(n);
  if (!value) return "";
  return t("levelN", { n: label("gradeShort", value) });
}

function gradeWords(grade) {
  const g = Number(grade);
  if (!g) return "";
  // "Ⅲ级 较大" / "III · Large": the words after the numeral.
  const words = label("grade", g).split(/\s+/).slice(1).join(" ").replace(/^·\s*/, "");
  return lang() === "zh" ? `${roman(g)}（${words}）` : `${roman(g)} (${words})`;
}

function teamNames(ids) {
  return (ids || []).map((id) => state.teams.get(id) || t("dispatch.teams")).join(t("list"));
}

function warehouseName(id) {
  return state.warehouses.get(id) || "";
}

function itemName(warehouse, code) {
  return state.items.get(`${warehouse}/${code}`)?.name || state.items.get(code)?.name || "";
}

function resourceText(lines, lead = t("resources.label")) {
  if (!lines?.length) return "";
  const parts = lines.map((r) => {
    const unit = state.items.get(`${r.warehouse_id}/${r.item_code}`)?.unit || "";
    return `${warehouseName(r.warehouse_id)}${itemName(r.warehouse_id, r.item_code)} ${r.quantity}${unit}`;
  });
  return lead + parts.join(t("list"));
}

function because(reason) {
  return reason ? t("colon") + reason : "";
}

// The Chinese text of a reason, or nothing when the only text is English (a rule's code).
function chineseOnly(text) {
  return text && /[\u4e00-\u9fff]/.test(text) ? text : "";
}

// One sentence per event, built from its payload with names (never ids, codes or arrows).
function eventSummary(ev) {
  const p = ev.payload || {};
  const town = townshipName(p.township_code || ev.township_code);
  const reason = because(chineseOnly(p.reason_label || p.reason));
  const vars = {
    town,
    title: p.title || titleOf(p.incident_id),
    grade: gradeWords(p.grade),
    old: "",
    new: "",
    reason,
    primary: titleOf(p.primary_id),
    hazard: p.hazard ? label("hazard", p.hazard) : "",
    color: p.level ? label("level", p.level) : "",
    headline: p.headline || "",
    teams: teamNames(p.team_ids),
    resources: resourceText(p.resources),
    status: label("status", p.status),
    warehouse: warehouseName(p.warehouse_id),
    item: p.name || itemName(p.warehouse_id, p.item_code),
    quantity: p.quantity ?? "",
    unit: p.unit || "",
    level: roman(p.level),
    due: p.due_at ? fmtTime(p.due_at) : "",
    number: p.number ?? "",
    kind: label("kind", p.kind),
    n: p.escalation ?? "",
    date: p.date || "",
    summary: p.summary || "", // the duty office's events bring their own sentence
    village: p.village_name || "",
  };
  if (ev.event_type === "incident_regraded") {
    vars.old = gradeWords(p.old_grade);
    vars.new = gradeWords(p.new_grade);
  } else if (ev.event_type === "dispatch_status_changed") {
    vars.old = label("status", p.old_status);
  } else if (ev.event_type === "plan_changed") {
    vars.old = roman(p.old_level);
  } else if (ev.event_type === "warning_approval_decided") {
    // Which draft, who decided and why: the issuer is told of a rejection here.
    vars.headline = p.headline ? `「${p.headline}」` : "";
    vars.number = p.version ?? "";
    vars.decision = label("decision", p.decision);
    vars.by = p.decided_by ? `（${p.decided_by}）` : "";
    vars.note = because(p.note);
  } else if (ev.event_type === "warning_adjusted") {
    vars.reason = because(p.reason);
  } else if (["warning_lifted", "incident_closed", "incident_regraded"].includes(ev.event_type)) {
    vars.reason = because(p.reason);
  }
  return sentence("tl", ev.event_type, vars) ?? label("event", ev.event_type);
}

function titleOf(id) {
  if (!id || !readsIncidents()) return "";
  return state.incidents.get(id)?.title || state.titles.get(id) || t("unknownIncident");
}

function contactText(person) {
  if (!person?.name) return "";
  return person.phone ? t("contact", person) : person.name;
}

function affectedText(a) {
  let text = t("affected", a);
  if (a.houses_damaged || a.houses_collapsed) text += t("affected.houses", a);
  if (a.direct_loss_cny) text += t("affected.loss", { loss: (a.direct_loss_cny / 10000).toFixed(1) });
  return text;
}

// Why the incident was escalated: the text of each rule it met (篇1/篇3).
function escalationList(inc) {
  const details = inc.escalation_details || [];
  const texts = details.length ? details.map((d) => d.text) : [];
  if (!texts.length) return null;
  return h("ul", { class: "reasons" }, ...texts.map((text) => h("li", { text })));
}

// Why it is 迟报: how long after discovery it was first reported, against the grade's limit.
function lateText(inc) {
  const delay = Math.round(Number(inc.report_delay_minutes || 0));
  const limit = Math.round(Number(inc.late_limit_minutes || 0));
  if (!limit) return t("late");
  const grade = roman(inc.initial_grade || inc.grade);
  return t("late.reason", { delay, limit, over: Math.max(0, delay - limit), grade });
}

function reportChain(chain) {
  const items = chain?.items || [];
  if (!items.length) return null;
  return h(
    "ol",
    { class: "chain" },
    ...items.map((r) =>
      h(
        "li",
        { class: "chain-item" },
        t("report.item", {
          kind: label("kind", r.kind),
          number: r.number ? t("report.number", { n: r.number }) : "",
        }),
        " · ",
        t("report.filed", { t: fmtTime(r.filed_at) }),
        r.late ? " " : null,
        r.late ? marker("late", t("late")) : null,
      ),
    ),
  );
}

function deadlineList(list) {
  const items = (list?.items || []).filter((d) => d.status === "pending" || d.status === "overdue");
  if (!items.length) return null;
  return h(
    "ul",
    { class: "chain" },
    ...items.map((d) =>
      h("li", {
        class: `deadline deadline-${d.status}`,
        text: t("deadline.item", {
          kind: label("kind", d.kind),
          due: fmtTime(d.due_at),
          status: label("status", d.status),
        }),
      }),
    ),
  );
}

async function openDetail(id) {
  if (!id) return;
  state.detailId = id;
  const detail = $("detail");
  detail.hidden = false;
  $("detail-title").textContent = incidentTitle(id) || id;
  clear($("detail-facts"));
  clear($("detail-timeline"));
  $("detail-timeline").append(h("li", { class: "empty", text: t("loading") }));
  $("detail-close").focus();
  await loadDetail(id);
}

function closeDetail() {
  state.detailId = null;
  $("detail").hidden = true;
}

async function loadDetail(id) {
  const detail = $("detail");
  try {
    const quiet = (path) => api(path).catch((err) => (err.status === 401 ? Promise.reject(err) : null));
    const [inc, tl, reports, deadlines] = await Promise.all([
      api(`/v1/incidents/${encodeURIComponent(id)}`),
      api(`/v1/timeline/${encodeURIComponent(id)}`),
      quiet(`/v1/reports?incident_id=${encodeURIComponent(id)}`),
      quiet(`/v1/deadlines?incident_id=${encodeURIComponent(id)}`),
    ]);
    if (state.detailId !== id) return;
    $("detail-title").textContent = inc.title || id;
    const dl = $("detail-facts");
    clear(dl);
    fact(dl, "detail.grade", gradeBadge(inc.grade));
    const markers = [
      inc.late ? marker("late", t("late")) : null,
      inc.escalated ? marker("escalated", t("escalated")) : null,
      inc.exercise ? marker("exercise", t("exercise")) : null,
    ].filter(Boolean);
    if (markers.length) fact(dl, "detail.markers", h("span", { class: "markers" }, ...markers));
    fact(dl, "detail.status", label("status", inc.status));
    fact(dl, "detail.township", townshipName(inc.township_code));
    fact(dl, "detail.category", label("category", inc.category));
    fact(dl, "detail.occurred", fmtTime(inc.occurred_at));
    fact(dl, "detail.reported", fmtTime(inc.reported_at));
    fact(dl, "detail.address", inc.location?.address);
    fact(dl, "detail.source", inc.source);
    if (inc.casualties) fact(dl, "detail.casualties", t("casualties", inc.casualties));
    if (inc.affected) fact(dl, "detail.affected", affectedText(inc.affected));
    if (inc.people_involved) fact(dl, "detail.people", t("people", { n: inc.people_involved }));
    fact(dl, "detail.description", inc.description);
    fact(dl, "detail.scope", inc.scope);
    fact(dl, "detail.measures", inc.measures_taken);
    fact(dl, "detail.needs", inc.needs);
    fact(dl, "detail.trend", inc.trend);
    fact(dl, "detail.reporter", contactText(inc.reporter));
    fact(dl, "detail.approver", contactText(inc.approver));
    if (inc.escalated) fact(dl, "detail.why_escalated", escalationList(inc));
    if (inc.late) fact(dl, "detail.why_late", lateText(inc));
    fact(dl, "detail.reports", reportChain(reports));
    fact(dl, "detail.deadlines", deadlineList(deadlines));

    const events = Array.isArray(tl) ? tl : tl.items || tl.events || [];
    const ol = $("detail-timeline");
    clear(ol);
    ol.append(
      ...(events.length
        ? events.map((ev) =>
            h(
              "li",
              { class: `tl tl-${ev.source || ""}` },
              h("time", { datetime: ev.occurred_at, text: fmtTime(ev.occurred_at) }),
              h("span", { class: `src src-${ev.source || ""}`, text: label("source", ev.source) }),
              h("span", { class: "tl-type", text: label("event", ev.event_type) }),
              h("span", { class: "tl-summary", text: eventSummary(ev) }),
            ),
          )
        : [emptyItem("empty.timeline")]),
    );
    panelError(detail, null);
  } catch (err) {
    if (state.detailId === id) panelError(detail, err);
  }
}

// ------------------------------------------------------------------ live stream

function relatedIncident(ev) {
  const p = ev.payload || {};
  return p.incident_id || (ev.incident_ids || [])[0] || p.primary_id || null;
}

function panelsFor(type) {
  if (type.startsWith("incident_")) return ["incidents", "deadlines"];
  if (type.startsWith("warning_village_")) return ["warnings", "reach"];
  if (type.startsWith("warning_")) return ["warnings", "pending"];
  if (type.startsWith("dispatch_")) return ["dispatches"];
  if (["followup_filed", "final_report_filed", "report_overdue"].includes(type)) {
    return ["deadlines", "incidents", "campaigns"];
  }
  if (type === "zero_report_missed" || type === "zero_report_filed") return ["zero"];
  if (type === "zero_report_contradicted") return ["concealment"];
  if (type.startsWith("epidemic_report_")) return ["epidemic"];
  if (type.startsWith("enterprise_")) return ["enterprises"];
  if (type.startsWith("campaign_")) return ["campaigns", "deadlines"];
  if (type.startsWith("information_")) return ["information"];
  if (type.startsWith("assignment_") || type === "joint_meeting_held") return ["disputes"];
  return [];
}

function feedItem(ev) {
  const incident = relatedIncident(ev);
  const text = h(
    "span",
    { class: "feed-text" },
    h("span", { class: "tl-type", text: label("event", ev.event_type) }),
    " ",
    h("span", { class: "tl-summary", text: eventSummary(ev) }),
  );
  if (isDrill(ev)) text.append(" ", drillMarker(ev));
  return h(
    "li",
    { class: `feed-item src-${ev.source || ""}${isDrill(ev) ? " drill" : ""}` },
    h("time", { datetime: ev.occurred_at, text: fmtTime(ev.occurred_at, false) }),
    incident && readsIncidents()
      ? h("button", { type: "button", class: "link", onclick: () => openDetail(incident) }, text)
      : text,
  );
}

// What the feed shows once (as the stream's feed_key in console.py): an event, or a unit's
// epidemic filing of a day, which arrives as one event per watched disease.
function feedKey(ev) {
  const p = ev.payload || {};
  if (ev.event_type !== "epidemic_report_filed" || !p.unit_id) return ev.event_id;
  return `epidemic_report_filed:${p.unit_id}:${p.date}:v${p.version}:${p.exercise ? "drill" : "real"}`;
}

function oncePerFeedKey(events) {
  const keys = new Set();
  return events.filter((ev) => {
    const key = feedKey(ev);
    if (keys.has(key)) return false;
    keys.add(key);
    return true;
  });
}

// The recent backlog for the feed on sign-in: the latest events of the past hour, widened to 3
// and then 12 hours while fewer than a feed's worth came back. The audit trail (duty roles
// only) lists oldest first, so a short window keeps the newest within the pages fetched; a
// township key starts with an empty feed.
async function loadBacklog() {
  if (!["operator", "leader", "admin"].includes(state.me?.role)) return;
  try {
    let events = [];
    for (const hours of BACKLOG_HOURS) {
      const from = new Date(nowMs() - hours * 3600_000).toISOString();
      events = await listAll(`/v1/audit?from=${encodeURIComponent(from)}`, 200, 5);
      if (events.length >= FEED_MAX) break;
    }
    const recent = oncePerFeedKey(events.slice().reverse()).slice(0, FEED_MAX);
    const seen = new Set(state.feed.map(feedKey));
    state.feed = [...state.feed, ...recent.filter((ev) => !seen.has(feedKey(ev)))].slice(0, FEED_MAX);
    renderFeed();
  } catch {
    /* the feed still fills from the live stream */
  }
}

function addToFeed(ev) {
  if (ev.event_id && state.feed.some((seen) => feedKey(seen) === feedKey(ev))) return;
  state.feed.unshift(ev);
  state.feed.length = Math.min(state.feed.length, FEED_MAX);
  if (isDrill(ev) && !state.showExercise) return;
  const list = $("list-feed");
  list.querySelector(".empty")?.remove();
  list.prepend(feedItem(ev));
  while (list.children.length > FEED_MAX) list.lastChild.remove();
}

function renderFeed() {
  const list = $("list-feed");
  clear(list);
  const items = listed(state.feed);
  list.append(...(items.length ? items.map(feedItem) : [emptyItem("empty.feed")]));
}

function onEvent(type, data) {
  if (type === "ready") return;
  addToFeed(data);
  const panels = panelsFor(type);
  const incident = relatedIncident(data);
  if (state.detailId && (incident === state.detailId || (data.incident_ids || []).includes(state.detailId))) {
    panels.push("detail");
  }
  scheduleRefresh(panels);
}

function parseBlock(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try {
    return { type, data: JSON.parse(data.join("\n")) };
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function runStream() {
  const gen = ++state.streamGen;
  let attempt = 0;
  let connectedBefore = false;
  while (state.key && gen === state.streamGen) {
    const ctrl = new AbortController();
    state.streamCtrl = ctrl;
    let watchdog = null;
    const kick = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => ctrl.abort(), STALL_MS);
    };
    try {
      const res = await fetch("/v1/stream", {
        headers: { Authorization: `Bearer ${state.key}`, Accept: "text/event-stream" },
        signal: ctrl.signal,
        cache: "no-store",
        credentials: "same-origin",
      });
      if (res.status === 401) {
        logout(t("login.bad"));
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      kick();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        kick();
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = parseBlock(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (!message) continue;
          if (message.type === "revoked") {
            // The server ends the stream: the key was revoked while the page was open.
            logout(t("login.bad"));
            return;
          }
          if (message.type === "ready") {
            attempt = 0;
            setLive(true);
            // Whatever happened while the stream was down is fetched afresh.
            if (connectedBefore) refreshAll();
            connectedBefore = true;
          } else {
            onEvent(message.type, message.data);
          }
        }
      }
    } catch {
      /* network loss, stall or abort: reconnect below */
    } finally {
      clearTimeout(watchdog);
    }
    if (!state.key || gen !== state.streamGen) return;
    setLive(false);
    const delay = Math.min(30_000, 1000 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    attempt = Math.min(attempt + 1, 6);
    await sleep(delay);
  }
}

function stopStream() {
  state.streamGen++;
  state.streamCtrl?.abort();
  state.streamCtrl = null;
}

// ------------------------------------------------------------------ daily summary

async function openSummary() {
  // Opened inside the click so no pop-up blocker objects; filled once the HTML arrives.
  const win = window.open("", "_blank");
  if (!win) {
    showBanner(t("summary.popup"));
    return;
  }
  win.document.title = t("loading");
  try {
    const date = summaryDate();
    const html = await api(`/v1/summaries/daily?date=${encodeURIComponent(date)}&format=html`, {
      as: "text",
    });
    showPrintable(win, html);
  } catch (err) {
    win.close();
    if (err.status !== 401) showBanner(`${t("summary.failed")}: ${err.message}`);
  }
}

// Puts the server's printable HTML into the pop-up. The pop-up shares the console's CSP, which
// refuses the page's inline <style>; its rules are applied as a constructed stylesheet instead
// (CSSOM is not subject to style-src), and scripts are dropped (DOMParser never runs them).
function showPrintable(win, html) {
  // <style> blocks are cut out before parsing: even an inert parsed document reports them to
  // the CSP as refused inline styles.
  const css = [];
  const body = html.replace(/<style[^>]*>([\s\S]*?)<\/style>/gi, (_, rules) => {
    css.push(rules);
    return "";
  });
  const parsed = new DOMParser().parseFromString(body, "text/html");
  parsed.querySelectorAll("style, script, link, meta[http-equiv]").forEach((el) => el.remove());
  parsed.querySelectorAll("[style]").forEach((el) => el.removeAttribute("style"));
  const doc = win.document;
  doc.documentElement.lang = parsed.documentElement.lang || "zh-CN";
  doc.title = parsed.title || t("summary");
  doc.body.replaceWith(doc.importNode(parsed.body, true));
  const sheet = new win.CSSStyleSheet();
  sheet.replaceSync(css.join("\n"));
  doc.adoptedStyleSheets = [sheet];
}

// ------------------------------------------------------------------ forms

// "YYYY-MM-DDTHH:MM" in the county's zone (a datetime-local input's value) for a moment.
function localInput(ms) {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone: zone(), year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    }).formatToParts(new Date(ms)).map((x) => [x.type, x.value]),
  );
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

// A datetime-local value read as county time, as an ISO time with the county's offset.
function fromLocalInput(value) {
  const offset = new Intl.DateTimeFormat("en-US", { timeZone: zone(), timeZoneName: "longOffset" })
    .formatToParts(new Date(nowMs()))
    .find((x) => x.type === "timeZoneName")?.value.replace("GMT", "") || "+08:00";
  return `${value}:00${offset === "" ? "+00:00" : offset}`;
}

function options(select, entries, selected) {
  clear(select);
  select.append(...entries.map(([value, text]) => h("option", { value, selected: value === selected, text })));
}

function formError(form, err) {
  form.querySelector(".form-error").textContent = err ? `${t("error.action")}: ${err.message}` : "";
}

function openForm(dialogId) {
  const dialog = $(dialogId);
  formError(dialog.querySelector("form"), null);
  dialog.showModal();
  return dialog;
}

function townshipEntries() {
  return [...state.townships.entries()];
}

// The duty office enters a phoned-in report; intake takes reports from these two of its roles.
function canPhoneIn() {
  return ["operator", "leader"].includes(state.me?.role);
}

function canIssue() {
  return ["operator", "leader", "department"].includes(state.me?.role);
}

function canDispatch() {
  return ["operator", "leader"].includes(state.me?.role);
}

// 电话报告: a township phones the incident in and the duty officer enters it on its behalf.
// The caller is the 报送人; who took the call is sent as received_by (接听人) and named in the
// source text as well.
function openPhoneForm() {
  const form = $("incident-form");
  form.reset();
  options(form.township_code, townshipEntries());
  const categories = Object.keys(DICTS.zh.category);
  options(form.category, categories.map((c) => [c, label("category", c)]));
  const now = localInput(nowMs());
  form.occurred_at.value = now;
  form.discovered_at.value = now;
  form.taker.value = state.me?.name || "";
  openForm("incident-dialog");
  form.title.focus();
}


async function submitPhoneForm(form) {
  const n = (name) => Number(form[name].value || 0);
  const body = {
    township_code: form.township_code.value,
    category: form.category.value,
    title: form.title.value.trim(),
    description: form.description.value.trim(),
    occurred_at: fromLocalInput(form.occurred_at.value),
    discovered_at: fromLocalInput(form.discovered_at.value),
    location: { address: form.address.value.trim() },
    casualties: { deaths: n("deaths"), injured: n("injured"), missing: n("missing"), trapped: n("trapped") },
    affected: { people_affected: n("people_affected"), people_evacuated: n("people_evacuated") },
    people_involved: n("people_involved"),
    measures_taken: form.measures_taken.value.trim(),
    needs: form.needs.value.trim(),
    reporter: { name: form.caller_name.value.trim(), phone: form.caller_phone.value.trim() },
    approver: { name: form.approver_name.value.trim(), phone: form.approver_phone.value.trim() },
    source: t("form.phone.source", { taker: form.taker.value.trim() }),
    // Intake keeps who took the call as 接听人 beside the caller (the reporter).
    received_by: { name: form.taker.value.trim() },
  };
  const trend = form.trend.value.trim();
  if (trend) body.trend = trend;
  const created = await api("/v1/incidents", { method: "POST", body });
  $("incident-dialog").close();
  scheduleRefresh(["incidents"], 0);
  openDetail(created.id);
}

function openWarningForm() {
  const form = $("warning-form");
  form.reset();
  const hazards = Object.keys(DICTS.zh.hazard);
  options(form.hazard, hazards.map((c) => [c, label("hazard", c)]));
  options(form.level, [4, 3, 2, 1].map((lv) => [String(lv), `${label("level", lv)}（${roman(lv)}）`]));
  form.expires.value = localInput(nowMs() + 6 * 3600_000);
  const box = $("warning-areas");
  clear(box);
  box.append(
    ...townshipEntries().map(([code, name]) =>
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "area", value: code }), name),
    ),
  );
  openForm("warning-dialog");
  form.headline.focus();
}


async function submitWarningForm(form) {
  const areas = [...form.querySelectorAll("input[name=area]:checked")].map((el) => el.value);
  if (!areas.length) throw new ApiError(422, "validation_failed", t("form.areas.empty"));
  const body = {
    hazard: form.hazard.value,
    level: Number(form.level.value),
    headline: form.headline.value.trim(),
    description: form.description.value.trim(),
    instruction: form.instruction.value.trim(),
    areas,
    expires: fromLocalInput(form.expires.value),
  };
  await api("/v1/warnings", { method: "POST", body });
  $("warning-dialog").close();
  scheduleRefresh(["warnings", "pending"], 0);
}

// 调派 from the incident detail: the suggested teams (best match first) and one stock line.
async function openDispatchForm() {
  const id = state.detailId;
  if (!id) return;
  const form = $("dispatch-form");
  form.reset();
  form.quantity.removeAttribute("aria-invalid"); // reset() keeps what the last check marked
  form.dataset.incident = id;
  $("dispatch-incident").textContent = titleOf(id);
  const box = $("dispatch-teams");
  clear(box);
  box.append(h("p", { class: "hint", text: t("loading") }));
  openForm("dispatch-dialog");
  try {
    const [suggested, stock] = await Promise.all([
      api(`/v1/dispatches/suggest?incident_id=${encodeURIComponent(id)}`),
      listAll("/v1/stock"),
    ]);
    clear(box);
    box.append(
      ...(suggested.items || []).map((s) =>
        h(
          "label",
          { class: "check" },
          h("input", { type: "checkbox", name: "team", value: s.team.id }),
          `${s.team.name}（${s.team.township_name || townshipName(s.team.township_code)}，${t("people", { n: s.team.headcount })}${s.distance_km != null ? `，${s.distance_km} km` : ""}）`,
        ),
      ),
    );
    options(form.stock, [
      ["", t("form.stock.none")],
      ...stock.map((line) => [
        `${line.warehouse_id}/${line.item_code}`,
        `${warehouseName(line.warehouse_id)} · ${line.name}（${line.quantity}${line.unit || ""}）`,
      ]),
    ]);
  } catch (err) {
    formError(form, err);
  }
}

// What keeps the dispatch form from being sent (a text key), or null: a chosen supply needs a
// quantity, and an order needs a team or a supply.
function dispatchProblem(form) {
  const chosenTeam = form.querySelector("input[name=team]:checked");
  if (form.stock.value && !(Number(form.quantity.value) > 0)) return "form.dispatch.quantity";
  if (!chosenTeam && !form.stock.value) return "form.dispatch.empty";
  return null;
}

// Once a problem is shown, each change says whether it is still there (and clears it if not).
function recheckDispatchForm() {
  const form = $("dispatch-form");
  if (!form.querySelector(".form-error").textContent) return;
  const problem = dispatchProblem(form);
  form.quantity.toggleAttribute("aria-invalid", problem === "form.dispatch.quantity");
  formError(form, problem ? new ApiError(422, "validation_failed", t(problem)) : null);
}

async function submitDispatchForm(form) {
  const teamIds = [...form.querySelectorAll("input[name=team]:checked")].map((el) => el.value);
  const problem = dispatchProblem(form);
  form.quantity.toggleAttribute("aria-invalid", problem === "form.dispatch.quantity");
  if (problem) throw new ApiError(422, "validation_failed", t(problem));
  const resources = [];
  if (form.stock.value) {
    const [warehouse, item] = form.stock.value.split("/");
    resources.push({ warehouse_id: warehouse, item_code: item, quantity: Number(form.quantity.value) });
  }
  await api("/v1/dispatches", {
    method: "POST",
    body: { incident_id: form.dataset.incident, team_ids: teamIds, resources, note: form.note.value.trim() },
  });
  $("dispatch-dialog").close();
  scheduleRefresh(["dispatches", "detail"], 0);
}

function wireForm(formId, submit) {
  const form = $(formId);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      formError(form, null);
      await submit(form);
    } catch (err) {
      if (err.status !== 401) formError(form, err);
    } finally {
      button.disabled = false;
    }
  });
  form.querySelector(".form-cancel").addEventListener("click", () => form.closest("dialog").close());
}

// ------------------------------------------------------------------ login and layout

function showLogin(message = "") {
  $("login").hidden = false;
  $("board").hidden = true;
  $("detail").hidden = true;
  const headerItems = ["who", "phone-btn", "warn-btn", "summary-btn", "summary-docx", "summary-pdf", "summary-date-box", "exercise-toggle", "clock", "epidemic-btn", "enterprises-btn"];
  for (const id of [...headerItems, "logout-btn", "live"]) $(id).hidden = true;
  $("login-error").textContent = message;
  $("key-input").value = "";
  $("key-input").focus();
}

function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  const me = state.me;
  const who = $("who");
  who.textContent = `${me.name} · ${label("role", me.role)}${me.township_code ? " · " + townshipName(me.township_code) : ""}`;
  who.hidden = false;
  $("summary-btn").hidden = me.role === "township";
  $("summary-docx").hidden = me.role === "township";
  $("summary-pdf").hidden = me.role === "township";
  $("summary-date-box").hidden = me.role === "township";
  $("phone-btn").hidden = !canPhoneIn();
  for (const tile of ["incidents", "major"]) {
    document.querySelector(`.tile[data-tile="${tile}"]`).hidden = !readsIncidents();
  }
  $("tiles").classList.toggle("no-incidents", !readsIncidents());
  $("warn-btn").hidden = !canIssue();
  $("dispatch-btn").hidden = !canDispatch();
  $("clock").hidden = false;
  $("epidemic-btn").hidden = false;
  $("enterprises-btn").hidden = false;
  $("campaign-btn").hidden = false; // a township key is answered its own campaigns and part
  $("info-btn").hidden = false;
  $("dispute-btn").hidden = !MEDIATORS.includes(me.role); // the API lists assignments to these only
  $("exercise-toggle").hidden = false;
  $("exercise-input").checked = state.showExercise;
  $("logout-btn").hidden = false;
  const pending = seesPending();
  $("panel-pending").hidden = !pending;
  document.querySelector(".grid").classList.toggle("no-pending", !pending);
  state.feed = [];
  renderFeed();
  setLive(false);
  hideBanner();
  setupDuty({
    api, h, clear, fmtTime, download, localInput, fromLocalInput, nowMs, me,
    today: () => state.context?.today || new Date(nowMs()).toISOString().slice(0, 10),
  });
}

function logout(message = "") {
  const wasSignedIn = Boolean(state.key);
  state.key = null;
  state.me = null;
  state.detailId = null;
  state.feed = [];
  sessionStorage.removeItem(KEY_STORE);
  stopStream();
  clearInterval(state.refreshTimer);
  clearInterval(state.clockTimer);
  for (const timer of state.pendingRefresh.values()) clearTimeout(timer);
  state.pendingRefresh.clear();
  // Nothing of the board stays in the page once signed out.
  for (const id of ["list-warnings", "list-pending", "list-incidents", "list-dispatches", "list-deadlines", "zero-body", "list-concealment", "list-feed", "detail-facts", "detail-timeline"]) {
    clear($(id));
  }
  $("concealment").hidden = true;
  $("badge-concealment").hidden = true;
  resetDuty();
  hideBanner();
  if (wasSignedIn || message) showLogin(message);
}

async function login(key) {
  state.key = key;
  let me;
  try {
    me = await api("/v1/me");
  } catch (err) {
    state.key = null;
    sessionStorage.removeItem(KEY_STORE);
    const msg =
      err.status === 401
        ? t("login.bad")
        : err.status === 429
          ? t("login.throttled")
          : err.status === 0
            ? t("login.network")
            : err.message;
    hideBanner();
    showLogin(msg);
    return;
  }
  state.me = me;
  sessionStorage.setItem(KEY_STORE, key);
  try {
    const towns = await api("/v1/townships");
    state.townships = new Map((towns.items || []).map((tw) => [tw.code, tw.name]));
  } catch {
    state.townships = new Map();
  }
  await loadNames();
  showBoard();
  await refreshAll();
  tickClock();
  clearInterval(state.clockTimer);
  state.clockTimer = setInterval(tickClock, 1000);
  state.refreshTimer = setInterval(() => state.key && refreshAll(), REFRESH_MS);
  await loadBacklog();
  runStream();
}

function applyLang(next) {
  setLang(next);
  localStorage.setItem(LANG_STORE, next);
  $("lang-btn").textContent = t("lang.other");
  document.title = `${t("title")} · Yingji`;
  if (state.key && state.me) {
    showBoardLabels();
    refreshAll();
  }
}

function showBoardLabels() {
  const me = state.me;
  $("who").textContent = `${me.name} · ${label("role", me.role)}${me.township_code ? " · " + townshipName(me.township_code) : ""}`;
  $("live").textContent = state.live ? t("live") : t("offline");
  renderFeed();
}

function init() {
  applyLang(localStorage.getItem(LANG_STORE) || "zh");
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) {
      $("login-error").textContent = t("login.empty");
      return;
    }
    $("key-input").value = "";
    login(key);
  });
  $("lang-btn").addEventListener("click", () => applyLang(lang() === "zh" ? "en" : "zh"));
  $("logout-btn").addEventListener("click", () => logout(""));
  $("summary-btn").addEventListener("click", openSummary);
  $("epidemic-btn").addEventListener("click", () =>
    openEpidemic({ api, townshipName, day: state.context?.today, fmtTime }),
  );
  wireEpidemic();
  $("enterprises-btn").addEventListener("click", () =>
    openEnterprises({ api, townships: [...state.townships.keys()], townshipName, mine: state.me?.township_code }),
  );
  wireEnterprises();
  wireReach();
  $("campaign-btn").addEventListener("click", () =>
    openCampaigns({ api, townshipName, fmtTime, mine: state.me?.township_code || null, drills: () => state.showExercise }),
  );
  wireCampaigns();
  $("info-btn").addEventListener("click", () =>
    openInformation({ api, day: state.context?.today, canRecord: ["operator", "leader"].includes(state.me?.role) }),
  );
  wireInformation();
  $("dispute-btn").addEventListener("click", () =>
    openDisputes({
      api,
      townshipName,
      fmtTime,
      incidentTitle,
      today: state.context?.today || "",
      drills: () => state.showExercise,
      canWrite: MEDIATORS.includes(state.me?.role),
    }),
  );
  wireDisputes();
  $("summary-docx").addEventListener("click", () => downloadSummary("docx"));
  $("summary-pdf").addEventListener("click", () => downloadSummary("pdf"));
  $("bulletin-docx").addEventListener("click", () => downloadBulletin("docx"));
  $("bulletin-pdf").addEventListener("click", () => downloadBulletin("pdf"));
  state.showExercise = localStorage.getItem(EXERCISE_STORE) === "1";
  $("exercise-input").addEventListener("change", (event) => {
    state.showExercise = event.target.checked;
    localStorage.setItem(EXERCISE_STORE, state.showExercise ? "1" : "0");
    renderFeed();
    if (state.key) refreshAll();
  });
  $("detail-close").addEventListener("click", closeDetail);
  $("reject-cancel").addEventListener("click", () => $("reject-dialog").close(""));
  $("phone-btn").addEventListener("click", openPhoneForm);
  $("warn-btn").addEventListener("click", openWarningForm);
  $("dispatch-btn").addEventListener("click", openDispatchForm);
  wireForm("incident-form", submitPhoneForm);
  wireForm("warning-form", submitWarningForm);
  wireForm("dispatch-form", submitDispatchForm);
  $("dispatch-form").addEventListener("input", recheckDispatchForm);
  $("dispatch-form").addEventListener("change", recheckDispatchForm);
  wireDuty();
  $("approve-cancel").addEventListener("click", () => $("approve-dialog").close(""));
  $("approve-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("approve-dialog").close("approve");
  });
  $("reject-form").addEventListener("submit", (event) => {
    event.preventDefault();
    // The leader's reason goes to the issuer: a blank one is asked for, never made up.
    if (!$("reject-reason").value.trim()) {
      $("reject-error").textContent = t("reject.blank");
      $("reject-reason").focus();
      return;
    }
    $("reject-dialog").close("reject");
  });
  $("reject-reason").addEventListener("input", () => ($("reject-error").textContent = ""));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.detailId && !document.querySelector("dialog[open]")) closeDetail();
  });
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) login(saved);
  else showLogin("");
}

init();
