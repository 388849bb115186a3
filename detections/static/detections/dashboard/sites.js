/* The sites view (/sites/): per site, occupancy now against capacity, the last
 * 24 hours of occupancy, who is inside longest first, dwell, and the visits that
 * ended lately, kept live by the socket's `visit` and `site` events
 * (docs/sites.md, "Events").
 *
 * How it stays exact: it starts as the routes view does (view.js), the socket
 * resuming from the log's seq read before the state is loaded from the API
 * (detections/dashboard/views.py, sites_page). An event the loaded state already
 * includes is applied again on top of it: each carries the site's occupancy and
 * the visit whole, so the replay ends where the log ends.
 *
 * Untrusted text (plates, camera and site names) only reaches the page through
 * textContent or attributes. */

import { $, config, field, fullTime, numberFormat, shortTime, hourFormat } from "./dom.js";
import { fetchJSON } from "./api.js";
import { signedOut } from "./socket.js";
import { chartLibrary, reloadSoon, startView } from "./view.js";

const RECENT_LIMIT = 8; // ended visits a card lists
const OPEN_LIMIT = 500; // open visits loaded per site (the API's largest page)
const DAY = 24 * 3600 * 1000;
const TICK = 15 * 1000; // how often durations and overstays are brought up to date
const SERIES_RELOAD = 5 * 60 * 1000; // how often the hourly series is read again (a new hour begins)
const DWELL_LABELS = ["≤15m", "≤30m", "≤1h", "≤2h", "≤4h", "≤8h", "≤24h", ">24h"]; // the API's histogram bounds

const sites = new Map(); // site id -> its state and its card

function sitePath(id, tail) {
  return `${config.sitesUrl}${encodeURIComponent(id)}/${tail}`;
}

/** "1 h 05 min", "12 min", "40 s". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function visitSeconds(visit, now = Date.now()) {
  if (visit.duration_seconds !== null && visit.state !== "open") return visit.duration_seconds;
  return visit.entered_at ? (now - new Date(visit.entered_at).getTime()) / 1000 : null;
}

function overstaying(site, visit) {
  if (visit.overstay) return true;
  const limit = site.info.max_stay_seconds;
  return visit.state === "open" && limit !== null && limit !== undefined && visitSeconds(visit) > limit;
}

// --- Loading ------------------------------------------------------------------------------------

async function loadSite(info) {
  const since = new Date(Date.now() - DAY).toISOString();
  const [occupancy, open, recent, dwell] = await Promise.all([
    fetchJSON(sitePath(info.id, "occupancy/?bucket=hour")),
    fetchJSON(sitePath(info.id, `visits/?state=open&page_size=${OPEN_LIMIT}`)),
    fetchJSON(sitePath(info.id, "visits/?state=closed&page_size=50")),
    fetchJSON(sitePath(info.id, `dwell/?since=${encodeURIComponent(since)}`)),
  ]);
  return {
    info,
    now: occupancy.now,
    capacity: occupancy.capacity,
    series: occupancy.series,
    open: new Map(open.results.map((visit) => [visit.id, visit])),
    recent: recentFirst(recent.results).slice(0, RECENT_LIMIT),
    dwell,
    card: null,
    charts: {},
    dwellTimer: 0,
  };
}

function recentFirst(visits) {
  const ended = (visit) => new Date(visit.exited_at || visit.entered_at).getTime();
  return [...visits].sort((a, b) => ended(b) - ended(a) || b.id - a.id);
}

async function load() {
  const list = await fetchJSON(config.sitesUrl);
  const loaded = await Promise.all(list.filter((info) => info.active).map(loadSite));
  const main = $("sites");
  for (const site of sites.values()) Object.values(site.charts).forEach((chart) => chart && chart.destroy());
  main.replaceChildren();
  sites.clear();
  for (const site of loaded) {
    site.card = makeCard(site);
    main.append(site.card);
    // Chart.js measures its canvas: only once it is in the page.
    site.charts.occupancy = occupancyChart(field(site.card, "occupancy-chart"));
    site.charts.dwell = dwellChart(field(site.card, "dwell-chart"));
    sites.set(site.info.id, site);
    renderSite(site);
  }
  main.setAttribute("aria-busy", "false");
  $("sites-empty").hidden = loaded.length > 0;
}

// --- Rendering ----------------------------------------------------------------------------------

function makeCard(site) {
  const card = $("site-card").content.firstElementChild.cloneNode(true);
  card.dataset.site = String(site.info.id);
  field(card, "name").textContent = site.info.name;
  return card;
}

function renderSite(site) {
  const card = site.card;
  const { now, capacity } = site;
  const full = capacity !== null && capacity !== undefined && now >= capacity;
  card.dataset.occupancy = String(now);
  card.classList.toggle("is-full", full);
  field(card, "full").hidden = !full;
  field(card, "now").textContent = numberFormat.format(now);
  field(card, "capacity").textContent = capacity === null ? "" : ` / ${numberFormat.format(capacity)}`;
  const track = field(card, "track");
  track.hidden = capacity === null || !capacity;
  if (capacity) field(card, "fill").style.width = `${Math.min(100, (100 * now) / capacity)}%`;
  renderOpen(site);
  renderRecent(site);
  renderOccupancyChart(site);
  renderDwell(site);
}

function renderOpen(site) {
  const longestFirst = [...site.open.values()].sort(
    (a, b) => new Date(a.entered_at) - new Date(b.entered_at) || a.id - b.id,
  );
  const list = field(site.card, "open-visits");
  list.replaceChildren(...longestFirst.map((visit) => visitRow(site, visit, visit.entered_at)));
  field(site.card, "open-empty").hidden = longestFirst.length > 0;
  const overstays = longestFirst.filter((visit) => overstaying(site, visit)).length;
  field(site.card, "open-note").textContent = overstays ? `${overstays} overstaying` : "";
}

function renderRecent(site) {
  const list = field(site.card, "recent-visits");
  list.replaceChildren(...site.recent.map((visit) => visitRow(site, visit, visit.exited_at || visit.entered_at)));
  field(site.card, "recent-empty").hidden = site.recent.length > 0;
}

function visitRow(site, visit, moment) {
  const row = $("visit-item").content.firstElementChild.cloneNode(true);
  row.dataset.id = String(visit.id);
  row.dataset.state = visit.state;
  const over = overstaying(site, visit);
  row.classList.toggle("is-overstay", over);
  field(row, "plate").textContent = visit.plate || "no plate";
  field(row, "duration").textContent = formatDuration(visitSeconds(visit));
  field(row, "overstay").hidden = !over;
  field(row, "state").textContent = visit.state === "open" || visit.state === "closed" ? "" : visit.state.replace("_", " ");
  const time = field(row, "time");
  time.dateTime = moment || "";
  time.textContent = moment ? shortTime(moment) : "";
  row.querySelector("button").addEventListener("click", () => openVisit(site, visit));
  return row;
}

function occupancyChart(canvas) {
  const Chart = chartLibrary();
  if (!Chart) return null;
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim();
  return new Chart(canvas, {
    type: "line",
    data: {
      labels: [],
      datasets: [
        { label: "Most inside", data: [], borderColor: accent, backgroundColor: `${accent}33`, fill: true, tension: 0.25, pointRadius: 0 },
        { label: "Capacity", data: [], borderColor: "#e5a33a", borderDash: [6, 4], pointRadius: 0, fill: false },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: { duration: 250 },
      interaction: { mode: "index", intersect: false },
      scales: { x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10 } } },
    },
  });
}

function dwellChart(canvas) {
  const Chart = chartLibrary();
  if (!Chart) return null;
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim();
  return new Chart(canvas, {
    type: "bar",
    data: { labels: DWELL_LABELS, datasets: [{ label: "Visits", data: [], backgroundColor: accent, borderRadius: 2 }] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: { duration: 250 },
      scales: { x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: false, font: { size: 10 } } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { display: false } },
    },
  });
}

function renderOccupancyChart(site) {
  const chart = site.charts.occupancy;
  if (!chart) return;
  chart.data.labels = site.series.map((bucket) => hourFormat.format(new Date(bucket.t)));
  chart.data.datasets[0].data = site.series.map((bucket) => bucket.max);
  chart.data.datasets[1].data = site.capacity === null ? [] : site.series.map(() => site.capacity);
  chart.update();
}

function renderDwell(site) {
  const { dwell } = site;
  const note = dwell.count
    ? `${dwell.count} ended · median ${formatDuration(dwell.median_seconds)} · p90 ${formatDuration(dwell.p90_seconds)}`
    : "none ended";
  field(site.card, "dwell-note").textContent = note;
  const chart = site.charts.dwell;
  if (!chart) return;
  chart.data.datasets[0].data = dwell.histogram.map((bucket) => bucket.count);
  chart.update();
}

// --- Events -------------------------------------------------------------------------------------

/** The current hour's bucket follows the live occupancy until the next reload adds the next hour. */
function followOccupancy(site) {
  const last = site.series[site.series.length - 1];
  if (!last) return;
  last.end = site.now;
  last.max = Math.max(last.max, site.now);
  last.min = Math.min(last.min, site.now);
}

function applyVisit(event) {
  const visit = event.visit || {};
  const site = sites.get(visit.site);
  if (!site) return reloadSoon();
  if (Number.isInteger(event.occupancy)) site.now = event.occupancy;
  site.open.delete(visit.id);
  site.recent = site.recent.filter((known) => known.id !== visit.id);
  if (event.event !== "removed") {
    if (visit.state === "open") site.open.set(visit.id, visit);
    else if (visit.state === "closed") site.recent = recentFirst([visit, ...site.recent]).slice(0, RECENT_LIMIT);
  }
  if (visit.state === "closed" || event.event === "removed" || event.event === "changed") scheduleDwell(site);
  followOccupancy(site);
  renderSite(site);
}

function applySite(event) {
  const site = sites.get(event.site);
  if (!site) return reloadSoon();
  site.now = event.occupancy;
  if (event.capacity !== undefined) site.capacity = event.capacity;
  followOccupancy(site);
  renderSite(site);
}

/** The hourly series read again, so a new hour gets its bucket. Only the series:
 * its `now` may be older than an event applied while the answer was on its way. */
async function reloadSeries() {
  for (const site of sites.values()) {
    try {
      const occupancy = await fetchJSON(sitePath(site.info.id, "occupancy/?bucket=hour"));
      if (sites.get(site.info.id) !== site) continue; // loaded again meanwhile
      site.series = occupancy.series;
      followOccupancy(site);
      renderOccupancyChart(site);
    } catch (error) {
      if (error.signedOut) return signedOut();
    }
  }
}

/** Dwell is percentiles over the day: asked again, once for a burst of visits ending. */
function scheduleDwell(site) {
  if (site.dwellTimer) return;
  site.dwellTimer = setTimeout(async () => {
    site.dwellTimer = 0;
    const since = new Date(Date.now() - DAY).toISOString();
    try {
      site.dwell = await fetchJSON(sitePath(site.info.id, `dwell/?since=${encodeURIComponent(since)}`));
      renderDwell(site);
    } catch (error) {
      if (error.signedOut) signedOut();
    }
  }, 500);
}

// --- The visit dialog ---------------------------------------------------------------------------

const dialog = $("visit-detail");
let shownVisit = null;

function openVisit(site, visit) {
  shownVisit = visit.id;
  dialog.dataset.visit = String(visit.id);
  $("visit-title").textContent = `${visit.plate || "no plate"} · ${site.info.name}`;
  const facts = [
    ["State", visit.state.replace("_", " ")],
    ["Entered", visit.entered_at ? fullTime(visit.entered_at) : "—"],
    ["Left", visit.exited_at ? fullTime(visit.exited_at) : "—"],
    ["Stay", formatDuration(visitSeconds(visit)) + (overstaying(site, visit) ? " (overstay)" : "")],
  ];
  $("visit-facts").replaceChildren(
    ...facts.map(([name, value]) => {
      const row = document.createElement("div");
      const term = document.createElement("dt");
      const text = document.createElement("dd");
      term.textContent = name;
      text.textContent = value;
      row.append(term, text);
      return row;
    }),
  );
  showShot($("visit-entry"), visit.entry_detection, visit.entry_camera, visit.entered_at, visit.id);
  showShot($("visit-exit"), visit.exit_detection, visit.exit_camera, visit.exited_at, visit.id);
  if (!dialog.open) dialog.showModal();
}

function showShot(figure, detectionId, camera, moment, visitId) {
  const image = field(figure, "image");
  const missing = field(figure, "missing");
  field(figure, "camera").textContent = camera || "";
  const time = field(figure, "time");
  time.dateTime = moment || "";
  time.textContent = moment ? shortTime(moment) : "";
  image.hidden = true;
  image.removeAttribute("src");
  missing.hidden = false;
  missing.textContent = detectionId ? "loading…" : "not read";
  if (!detectionId) return;
  fetchJSON(`${config.detectionsUrl}${encodeURIComponent(detectionId)}/`)
    .then((detection) => {
      if (shownVisit !== visitId) return;
      if (detection.image_url) {
        image.src = detection.image_url;
        image.hidden = false;
        missing.hidden = true;
      } else {
        missing.textContent = "no snapshot";
      }
    })
    .catch((error) => {
      if (shownVisit === visitId) missing.textContent = error.status === 404 ? "read deleted" : "could not load";
    });
}

$("visit-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("click", (event) => event.target === dialog && dialog.close());
dialog.addEventListener("close", () => (shownVisit = null));

// --- Start --------------------------------------------------------------------------------------

startView({
  name: "sites",
  load,
  events: { visit: applyVisit, site: applySite },
  onLoaded() {
    // Open stays grow, and pass their limit, with no event to say so.
    setInterval(() => sites.forEach((site) => (renderOpen(site), renderRecent(site))), TICK);
    setInterval(reloadSeries, SERIES_RELOAD);
  },
  // window.sitesView, for tests/test_dashboard_sites.py, beside what every view has.
  testHooks: {
    /** Per site id: what its two charts hold. */
    charts() {
      return Object.fromEntries(
        [...sites.values()].map((site) => [
          site.info.id,
          {
            occupancy: site.charts.occupancy && site.charts.occupancy.data.datasets[0].data.slice(),
            dwell: site.charts.dwell && site.charts.dwell.data.datasets[0].data.slice(),
          },
        ]),
      );
    },
  },
});
