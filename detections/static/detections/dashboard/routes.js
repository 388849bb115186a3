/* The routes view (/routes/): per route, the travel time now against the usual
 * for this hour, today's travel times and the latest journeys, kept live by the
 * socket's `journey` events; and the origin-destination matrix of the cameras
 * and range chosen (docs/journeys.md).
 *
 * How it stays exact: it starts as the sites view does (view.js), the socket
 * resuming from the log's seq read before the state is loaded from the API
 * (detections/dashboard/views.py, routes_page). A journey both in the loaded
 * state and replayed is known by its id and listed once; the figures (now,
 * usual, today's chart) are asked of the server again after events, never
 * counted up here, so a replay cannot count twice.
 *
 * Untrusted text (plates, camera and route names) only reaches the page through
 * textContent or attributes. */

import { $, config, field, numberFormat, shortTime, hourFormat } from "./dom.js";
import { fetchJSON } from "./api.js";
import { signedOut } from "./socket.js";
import { chartLibrary, reloadSoon, startView } from "./view.js";

const RECENT_LIMIT = 10; // journeys a card lists
const QUARTER = 15 * 60 * 1000;
const FIGURES_AFTER = 1000; // figures asked again this long after a burst of journey events
const FIGURES_EVERY = 60 * 1000; // ...and this often anyway: the last hour slides
const MATRIX_EVERY = 30 * 1000; // the matrix read again
const MATRIX_MAX_SECONDS = 1800; // the caption's "within 30 minutes"
const DEFAULT_CAMERAS = 8; // at most this many cameras ticked at first

// The browser's zone: "this hour" and "today" are the viewer's.
const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const routes = new Map(); // route id -> its state and its card

function routePath(id, tail) {
  return `${config.routesUrl}${encodeURIComponent(id)}/${tail}`;
}

/** "45 s", "2 min 05 s", "1 h 02 min". */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${String(total % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

function startOfToday() {
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  return midnight;
}

// --- Loading ------------------------------------------------------------------------------------

function nowQuery() {
  return `travel-time-now/?tz=${encodeURIComponent(timeZone)}`;
}

function dayQuery() {
  const since = startOfToday();
  return `travel-times/?bucket=15m&tz=${encodeURIComponent(timeZone)}&since=${encodeURIComponent(since.toISOString())}`;
}

async function loadRoute(info) {
  const [figures, day, journeys] = await Promise.all([
    fetchJSON(routePath(info.id, nowQuery())),
    fetchJSON(routePath(info.id, dayQuery())),
    fetchJSON(routePath(info.id, `journeys/?page_size=${RECENT_LIMIT}`)),
  ]);
  return { info, figures, day, recent: journeys.results, card: null, chart: null, figuresTimer: 0 };
}

async function allRoutes() {
  const found = [];
  let url = `${config.routesUrl}?page_size=100`;
  while (url) {
    const page = await fetchJSON(url);
    found.push(...page.results);
    url = page.next;
  }
  return found;
}

async function load() {
  const list = await allRoutes();
  const loaded = await Promise.all(list.filter((info) => info.active).map(loadRoute));
  const main = $("routes");
  for (const route of routes.values()) {
    if (route.chart) route.chart.destroy();
    clearTimeout(route.figuresTimer);
  }
  main.replaceChildren();
  routes.clear();
  for (const route of loaded) {
    route.card = makeCard(route);
    main.append(route.card);
    // Chart.js measures its canvas: only once it is in the page.
    route.chart = dayChart(field(route.card, "day-chart"));
    routes.set(route.info.id, route);
    renderRoute(route);
  }
  main.setAttribute("aria-busy", "false");
  $("routes-empty").hidden = loaded.length > 0;
  return loaded;
}

// --- Rendering ----------------------------------------------------------------------------------

function makeCard(route) {
  const card = $("route-card").content.firstElementChild.cloneNode(true);
  const { info } = route;
  card.dataset.route = String(info.id);
  field(card, "name").textContent = info.name;
  const distance = info.distance_m ? ` · ${numberFormat.format(info.distance_m / 1000)} km` : "";
  field(card, "ends").textContent = `${info.from_camera} → ${info.to_camera}${distance}`;
  return card;
}

function renderRoute(route) {
  renderFigures(route);
  renderJourneys(route);
  renderDay(route);
}

function renderFigures(route) {
  const { card, figures } = route;
  const { now, usual } = figures;
  field(card, "now").textContent = formatSeconds(now.median_seconds);
  field(card, "now-count").textContent = `(${plural(now.count, "journey")})`;
  field(card, "usual").textContent = formatSeconds(usual.median_seconds);
  field(card, "usual-count").textContent = usual.count
    ? `(${plural(usual.count, "journey")}, ${usual.weeks} weeks before)`
    : `(none in the ${usual.weeks} weeks before)`;
  const trend = field(card, "trend");
  const both = now.median_seconds !== null && usual.median_seconds !== null && usual.median_seconds > 0;
  trend.hidden = !both;
  card.dataset.trend = "";
  if (both) {
    const change = Math.round((100 * (now.median_seconds - usual.median_seconds)) / usual.median_seconds);
    // Within a tenth of the usual is the usual: a few journeys move a median that much.
    const state = change > 10 ? "slower" : change < -10 ? "faster" : "usual";
    card.dataset.trend = state;
    trend.dataset.state = state;
    trend.textContent = state === "usual" ? "as usual" : `${change > 0 ? "+" : ""}${change}% ${state}`;
  }
}

function plural(count, word) {
  return `${numberFormat.format(count)} ${word}${count === 1 ? "" : "s"}`;
}

function renderJourneys(route) {
  const list = field(route.card, "journeys");
  list.replaceChildren(...route.recent.map(journeyRow));
  field(route.card, "journeys-empty").hidden = route.recent.length > 0;
}

function journeyRow(journey) {
  const row = $("journey-item").content.firstElementChild.cloneNode(true);
  row.dataset.id = String(journey.id);
  row.classList.toggle("is-speeding", journey.speeding);
  field(row, "plate").textContent = journey.plate || "no plate";
  field(row, "seconds").textContent = formatSeconds(journey.seconds);
  field(row, "speed").textContent =
    journey.speed_kmh === null || journey.speed_kmh === undefined ? "" : `${Math.round(journey.speed_kmh)} km/h`;
  field(row, "speeding").hidden = !journey.speeding;
  field(row, "fuzzy").hidden = !journey.fuzzy;
  const time = field(row, "time");
  time.dateTime = journey.ended_at;
  time.textContent = shortTime(journey.ended_at);
  return row;
}

function dayChart(canvas) {
  const Chart = chartLibrary();
  if (!Chart) return null;
  const css = getComputedStyle(document.documentElement);
  const accent = css.getPropertyValue("--accent").trim();
  const warn = css.getPropertyValue("--warn").trim();
  return new Chart(canvas, {
    type: "line",
    data: {
      labels: [],
      datasets: [
        { label: "Median", data: [], borderColor: accent, backgroundColor: `${accent}33`, fill: true, tension: 0.25, pointRadius: 3, spanGaps: true },
        { label: "85th percentile", data: [], borderColor: warn, borderDash: [6, 4], pointRadius: 0, fill: false, tension: 0.25, spanGaps: true },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: { duration: 250 },
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 16 } },
        y: { beginAtZero: true, ticks: { callback: (value) => formatSeconds(value) } },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10 } },
        tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${formatSeconds(item.parsed.y)}` } },
      },
    },
  });
}

/** Today in quarters from midnight to now; a quarter without a journey is a gap. */
function renderDay(route) {
  const { series } = route.day;
  const count = series.reduce((total, bucket) => total + bucket.count, 0);
  field(route.card, "day-note").textContent = count ? plural(count, "journey") : "none yet";
  const chart = route.chart;
  if (!chart) return;
  const midnight = startOfToday().getTime();
  const slots = Math.max(1, Math.ceil((Date.now() - midnight) / QUARTER));
  const median = new Array(slots).fill(null);
  const p85 = new Array(slots).fill(null);
  for (const bucket of series) {
    const slot = Math.floor((new Date(bucket.t).getTime() - midnight) / QUARTER);
    if (slot < 0 || slot >= slots) continue;
    median[slot] = bucket.median_seconds;
    p85[slot] = bucket.p85_seconds;
  }
  chart.data.labels = median.map((_, slot) => hourFormat.format(new Date(midnight + slot * QUARTER)));
  chart.data.datasets[0].data = median;
  chart.data.datasets[1].data = p85;
  chart.update();
}

// --- Events -------------------------------------------------------------------------------------

function applyJourney(event) {
  const journey = event.journey || {};
  const route = routes.get(journey.route);
  if (!route) return reloadSoon();
  const others = route.recent.filter((known) => known.id !== journey.id);
  if (event.event === "removed") route.recent = others;
  else route.recent = newestFirst([journey, ...others]).slice(0, RECENT_LIMIT);
  renderJourneys(route);
  scheduleFigures(route);
  scheduleMatrix();
}

function newestFirst(journeys) {
  const ended = (journey) => new Date(journey.ended_at).getTime();
  return [...journeys].sort((a, b) => ended(b) - ended(a) || b.id - a.id);
}

/** The figures and today's chart asked again, once for a burst of journeys. */
function scheduleFigures(route) {
  if (route.figuresTimer) return;
  route.figuresTimer = setTimeout(() => refreshFigures(route), FIGURES_AFTER);
}

async function refreshFigures(route) {
  route.figuresTimer = 0;
  try {
    const [figures, day] = await Promise.all([
      fetchJSON(routePath(route.info.id, nowQuery())),
      fetchJSON(routePath(route.info.id, dayQuery())),
    ]);
    if (routes.get(route.info.id) !== route) return; // loaded again meanwhile
    route.figures = figures;
    route.day = day;
    renderFigures(route);
    renderDay(route);
  } catch (error) {
    if (error.signedOut) signedOut();
  }
}

// --- The origin-destination matrix --------------------------------------------------------------

const matrix = { cameras: [], hours: 24, shown: null, timer: 0, asking: 0 };

function setUpMatrix(loaded) {
  const fromRoutes = [];
  for (const route of loaded) {
    for (const name of [route.info.from_camera, route.info.to_camera]) {
      if (!fromRoutes.includes(name)) fromRoutes.push(name);
    }
  }
  // Every camera while they are few (a road's middle cameras are where its vehicles go next);
  // the routes' ends among many.
  const few = config.cameras.length <= DEFAULT_CAMERAS;
  const chosen = new Set(few || !fromRoutes.length ? config.cameras.slice(0, DEFAULT_CAMERAS) : fromRoutes);
  const list = $("od-cameras");
  list.replaceChildren(
    ...config.cameras.map((name) => {
      const label = document.createElement("label");
      label.className = "od-camera";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = name;
      box.checked = chosen.has(name);
      label.append(box, document.createTextNode(name));
      return label;
    }),
  );
  $("od-form").addEventListener("submit", (event) => {
    event.preventDefault();
    readMatrixForm();
    showMatrix();
  });
  readMatrixForm();
}

function readMatrixForm() {
  matrix.cameras = [...$("od-cameras").querySelectorAll("input:checked")].map((box) => box.value);
  matrix.hours = Number($("od-range").value) || 24;
}

function matrixUrl() {
  const until = new Date();
  const since = new Date(until.getTime() - matrix.hours * 3600 * 1000);
  const params = new URLSearchParams({
    cameras: matrix.cameras.join(","),
    since: since.toISOString(),
    until: until.toISOString(),
    max_seconds: String(MATRIX_MAX_SECONDS),
  });
  return `${config.odMatrixUrl}?${params}`;
}

async function showMatrix() {
  const empty = matrix.cameras.length === 0;
  $("od-empty").hidden = !empty;
  $("od-table").hidden = empty;
  if (empty) {
    matrix.shown = null;
    $("od-note").textContent = "";
    return;
  }
  const asking = ++matrix.asking;
  const url = matrixUrl();
  try {
    const answer = await fetchJSON(url);
    if (asking !== matrix.asking) return; // a newer question was asked meanwhile
    matrix.shown = { url, ...answer };
    drawMatrix(answer);
    const total = answer.counts.reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0);
    const range = $("od-range").selectedOptions[0].textContent.toLowerCase();
    $("od-note").textContent = `${plural(total, "transition")}, ${range}`;
  } catch (error) {
    if (error.signedOut) signedOut();
    else $("od-note").textContent = "could not load";
  }
}

function drawMatrix({ cameras, counts }) {
  const table = $("od-table");
  const most = Math.max(1, ...counts.flat());
  const head = document.createElement("tr");
  const corner = document.createElement("th");
  corner.className = "od-corner";
  corner.textContent = "from ↓ to →";
  head.append(corner);
  for (const name of cameras) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.append(th);
  }
  table.tHead.replaceChildren(head);
  const rows = cameras.map((origin, i) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = origin;
    tr.append(th);
    counts[i].forEach((count, j) => {
      const td = document.createElement("td");
      td.className = "od-cell";
      td.dataset.from = origin;
      td.dataset.to = cameras[j];
      td.dataset.count = String(count);
      td.textContent = numberFormat.format(count);
      // The heat: the share of the largest cell, as the accent's strength.
      td.style.setProperty("--heat", `${Math.round((100 * count) / most)}%`);
      td.classList.toggle("is-hot", count / most >= 0.6); // dark text on the bright end
      td.title = `${origin} → ${cameras[j]}: ${count}`;
      tr.append(td);
    });
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
}

function scheduleMatrix() {
  if (matrix.timer) return;
  matrix.timer = setTimeout(() => {
    matrix.timer = 0;
    showMatrix();
  }, FIGURES_AFTER);
}

// --- Start --------------------------------------------------------------------------------------

startView({
  name: "routes",
  load,
  events: { journey: applyJourney },
  onLoaded(loaded) {
    setUpMatrix(loaded);
    showMatrix();
    // The last hour slides, and a new quarter begins, with no event to say so.
    setInterval(() => routes.forEach(refreshFigures), FIGURES_EVERY);
    setInterval(showMatrix, MATRIX_EVERY);
  },
  // window.routesView, for tests/test_dashboard_routes.py, beside what every view has.
  testHooks: {
    /** The matrix drawn last: the URL it was read from, its cameras and counts. */
    get matrix() {
      return matrix.shown;
    },
    /** Per route id: the medians today's chart holds. */
    charts() {
      return Object.fromEntries(
        [...routes.values()].map((route) => [route.info.id, route.chart && route.chart.data.datasets[0].data.slice()]),
      );
    },
  },
});
