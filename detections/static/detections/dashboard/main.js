/* The live dashboard: counters, the feed, the hourly chart and the per-camera
 * bars, kept in step with the /ws socket (protocol: docs/websocket.md).
 *
 * How it stays exact: the page starts from a snapshot that carries the `seq`
 * of the last event it includes (detections/dashboard.py). Every event with a
 * higher seq is applied once, in order; anything at or below is a replay of
 * something already counted and is skipped. After a drop the socket reconnects
 * with ?after=<last seq> and the server replays what was missed. A new
 * snapshot (filter change, `reset`) moves the position back to its own seq and
 * asks the server to resume from there.
 *
 * Untrusted text (plates, tracking ids, camera names) only ever reaches the
 * page through textContent or attributes, never as HTML.
 *
 * Plain ES2020, no build step. window.dashboard exposes a few handles for the
 * browser tests (tests/test_dashboard.py) and for poking around in devtools.
 */
(function () {
  "use strict";

  const HOUR = 3600 * 1000;
  const FEED_LIMIT = 40; // rows in the feed; dashboard.FEED_SIZE sends as many
  const REMEMBERED_LIMIT = 5000; // detections kept in memory, to place deletions on the chart
  const BACKOFF_FIRST = 1000;
  const BACKOFF_MAX = 30000;
  const OFFLINE_AFTER_ATTEMPTS = 5; // failed attempts in a row before we say "offline"
  const STABLE_AFTER = 10000; // a connection this old resets the back-off
  const HEARTBEAT_IDLE = 25000; // ping after this long without a message...
  const HEARTBEAT_GRACE = 10000; // ...and give the connection up if nothing comes back
  const SERIES_RESYNC = 5 * 60 * 1000;

  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("dashboard-config").textContent);
  const TYPES = config.vehicleTypes;
  document.documentElement.classList.add("js");

  const numberFormat = new Intl.NumberFormat();
  const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dayClockFormat = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const hourFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

  const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);
  const sum = (values) => values.reduce((total, value) => total + value, 0);

  // --- What the page shows ------------------------------------------------------------

  const model = {
    seq: 0, // the last event applied (or included in the snapshot)
    total: 0, // every stored detection, whatever the filter (`count` of events)
    byType: {},
    byCamera: {},
    series: { starts: [], counts: {} }, // hour starts (ms) and per-type counts per hour
    filter: { camera: null, vehicle_type: null },
    detections: new Map(), // id -> detection, for the dialog and for deletions on the chart
  };

  function matchesFilter(event) {
    return (
      (model.filter.camera === null || event.camera === model.filter.camera) &&
      (model.filter.vehicle_type === null || event.vehicle_type === model.filter.vehicle_type)
    );
  }

  function remember(detection) {
    model.detections.delete(detection.id);
    model.detections.set(detection.id, detection);
    if (model.detections.size > REMEMBERED_LIMIT) {
      // Maps iterate in insertion order: the first key is the oldest.
      model.detections.delete(model.detections.keys().next().value);
    }
  }

  /** Replace everything with a snapshot from the server. */
  function applyState(state) {
    model.seq = state.seq;
    model.total = state.total;
    model.byType = Object.fromEntries(TYPES.map((type) => [type, 0]));
    Object.assign(model.byType, state.by_vehicle_type);
    model.byCamera = { ...state.by_camera };
    model.filter = { camera: state.filter.camera, vehicle_type: state.filter.vehicle_type };
    model.detections.clear();
    // Oldest first, so that the newest end up last in the remembered map.
    for (const detection of [...state.recent].reverse()) remember(detection);
    setSeries(state.series);
    Object.keys(model.byCamera).forEach(ensureCameraOption);
    syncFilterControls();
    feed.replace(state.recent);
    renderCounters(false);
    renderCameras();
    renderChart();
  }

  /** One socket event. Anything at or below model.seq was applied already. */
  function applyEvent(event) {
    if (!Number.isInteger(event.seq) || event.seq <= model.seq) return;
    model.seq = event.seq;
    if (Number.isInteger(event.count)) model.total = event.count;
    showLastEvent();
    // The server filters too, but not the events it replays for ?after= before
    // our subscribe arrives, nor those already on their way when it changes.
    if (matchesFilter(event)) {
      if (event.type === "new_detection") addDetection(event);
      else removeDetection(event);
    }
    renderCounters(true);
  }

  function addDetection(detection) {
    const type = detection.vehicle_type;
    model.byType[type] = (model.byType[type] || 0) + 1;
    model.byCamera[detection.camera] = (model.byCamera[detection.camera] || 0) + 1;
    ensureCameraOption(detection.camera);
    remember(detection);
    addToSeries(detection.time, type, 1);
    feed.add(detection);
    renderCameras();
  }

  function removeDetection(event) {
    const type = event.vehicle_type;
    model.byType[type] = Math.max(0, (model.byType[type] || 0) - 1);
    if (event.camera in model.byCamera) {
      model.byCamera[event.camera] = Math.max(0, model.byCamera[event.camera] - 1);
    }
    const known = model.detections.get(event.deleted_id);
    if (known) {
      addToSeries(known.time, known.vehicle_type, -1);
      model.detections.delete(event.deleted_id);
    } else {
      // The event does not say when the detection was taken: ask for the series again.
      scheduleSeriesResync(2000);
    }
    feed.remove(event.deleted_id);
    detail.deleted(event.deleted_id);
    renderCameras();
  }

  // --- Counters --------------------------------------------------------------------------

  const totalValue = $("total-count");
  const typeTiles = new Map(
    [...document.querySelectorAll(".counter-type")].map((tile) => [tile.dataset.type, tile])
  );

  function renderCounters(animate) {
    const filtered = model.filter.camera !== null || model.filter.vehicle_type !== null;
    setCount(totalValue, filtered ? sum(Object.values(model.byType)) : model.total, animate);
    $("total-label").textContent = filtered ? "Matching detections" : "Detections stored";
    $("total-note").textContent = filtered
      ? `of ${numberFormat.format(model.total)} stored`
      : `${numberFormat.format(seriesTotal())} in the last 24 h`;
    for (const [type, tile] of typeTiles) {
      setCount(tile.querySelector("[data-count]"), model.byType[type] || 0, animate);
      tile.classList.toggle("is-dimmed", model.filter.vehicle_type !== null && model.filter.vehicle_type !== type);
    }
  }

  function setCount(element, value, animate) {
    const text = numberFormat.format(value);
    if (element.textContent === text) return;
    element.textContent = text;
    if (animate) {
      const box = element.closest(".counter");
      box.classList.remove("tick");
      void box.offsetWidth; // restart the animation when it is already running
      box.classList.add("tick");
    }
  }

  function showLastEvent() {
    const now = new Date();
    const element = $("last-event");
    element.textContent = clockFormat.format(now);
    element.dateTime = now.toISOString();
  }

  // --- Feed ---------------------------------------------------------------------------------

  const feed = {
    list: $("feed"),
    template: $("feed-item"),
    rows: new Map(), // detection id -> <li>

    replace(detections) {
      this.rows.clear();
      this.list.replaceChildren(...detections.slice(0, FEED_LIMIT).map((d) => this.row(d)));
      this.update();
    },

    add(detection) {
      if (this.rows.has(detection.id)) return;
      const row = this.row(detection);
      row.classList.add("is-new");
      this.list.prepend(row);
      while (this.list.children.length > FEED_LIMIT) {
        const last = this.list.lastElementChild;
        this.rows.delete(Number(last.dataset.id));
        last.remove();
      }
      this.update();
    },

    remove(id) {
      const row = this.rows.get(id);
      if (!row) return;
      row.remove();
      this.rows.delete(id);
      this.update();
    },

    row(detection) {
      const row = this.template.content.firstElementChild.cloneNode(true);
      row.dataset.id = String(detection.id);
      row.dataset.type = detection.vehicle_type;
      const thumb = row.querySelector(".thumb");
      const image = thumb.querySelector("img");
      const source = thumbnailSource(detection);
      if (source) {
        image.addEventListener("error", () => thumb.classList.add("no-image"), { once: true });
        image.src = source;
      } else {
        thumb.classList.add("no-image");
      }
      row.querySelector(".type-badge").textContent = detection.vehicle_type;
      const plate = row.querySelector(".plate");
      plate.textContent = detection.plate || "no plate";
      plate.classList.toggle("no-plate", !detection.plate);
      row.querySelector(".feed-camera").textContent = detection.camera;
      const time = row.querySelector(".feed-time");
      time.textContent = shortTime(detection.time);
      time.dateTime = detection.time;
      time.title = fullTime(detection.time);
      this.rows.set(detection.id, row);
      return row;
    },

    update() {
      const count = this.list.children.length;
      $("feed-empty").hidden = count > 0;
      const { camera, vehicle_type: type } = model.filter;
      const scope = [camera, type && capitalise(type)].filter(Boolean).join(" · ");
      $("feed-note").textContent = scope ? `${scope} · latest on top` : "latest on top";
    },
  };

  /** The inline thumbnail of a live event, else the stored one's URL. */
  function thumbnailSource(detection) {
    if (typeof detection.image === "string" && /^[A-Za-z0-9+/]+={0,2}$/.test(detection.image)) {
      return `data:image/jpeg;base64,${detection.image}`;
    }
    return detection.thumbnail_url || null;
  }

  function shortTime(iso) {
    const moment = new Date(iso);
    if (Number.isNaN(moment.getTime())) return iso;
    const sameDay = moment.toDateString() === new Date().toDateString();
    return (sameDay ? clockFormat : dayClockFormat).format(moment);
  }

  function fullTime(iso) {
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? String(iso) : fullFormat.format(moment);
  }

  feed.list.addEventListener("click", (event) => {
    const row = event.target.closest(".feed-item");
    if (row) detail.open(Number(row.dataset.id));
  });

  // --- Hourly chart ---------------------------------------------------------------------------

  let chart = null;
  let chartFrame = 0;

  function setSeries(series) {
    const points = series.points || [];
    model.series = {
      starts: points.map((point) => Date.parse(point.start)),
      counts: Object.fromEntries(TYPES.map((type) => [type, points.map((p) => p.by_vehicle_type[type] || 0)])),
    };
    rollSeries(Date.now());
  }

  /** Slide the 24-hour window so its last bar is the current hour. */
  function rollSeries(now) {
    const { starts, counts } = model.series;
    let rolled = false;
    while (starts.length && now >= starts[starts.length - 1] + HOUR) {
      starts.push(starts[starts.length - 1] + HOUR);
      starts.shift();
      for (const type of TYPES) {
        counts[type].push(0);
        counts[type].shift();
      }
      rolled = true;
    }
    return rolled;
  }

  function addToSeries(iso, type, delta) {
    rollSeries(Date.now());
    const { starts, counts } = model.series;
    const moment = Date.parse(iso);
    if (!starts.length || !(type in counts) || Number.isNaN(moment)) return;
    // Buckets are whole UTC hours, one after the other.
    const index = Math.floor((moment - starts[0]) / HOUR);
    if (index < 0 || index >= starts.length) return; // outside the last 24 hours
    counts[type][index] = Math.max(0, counts[type][index] + delta);
    scheduleChartRender();
  }

  function seriesTotal() {
    return sum(TYPES.map((type) => sum(model.series.counts[type] || [])));
  }

  function makeChart() {
    if (!window.Chart) {
      $("chart-note").textContent = "the chart library did not load";
      return null;
    }
    const css = getComputedStyle(document.documentElement);
    const cssVar = (name) => css.getPropertyValue(name).trim();
    Chart.defaults.color = cssVar("--muted");
    Chart.defaults.borderColor = cssVar("--line");
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    return new Chart($("hourly-chart"), {
      type: "bar",
      data: {
        labels: [],
        datasets: TYPES.map((type) => ({
          label: capitalise(type),
          data: [],
          backgroundColor: cssVar(`--type-${type}`) || "#9aa7b6",
          borderRadius: 2,
          stack: "detections",
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 300 },
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 14 } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10, padding: 14 } },
          tooltip: {
            filter: (item) => item.raw > 0,
            callbacks: {
              title: (items) => (items.length ? hourRange(model.series.starts[items[0].dataIndex]) : ""),
              footer: (items) => `Total: ${sum(items.map((item) => item.raw))}`,
            },
          },
        },
      },
    });
  }

  function hourRange(start) {
    return `${fullFormat.format(new Date(start))} – ${hourFormat.format(new Date(start + HOUR))}`;
  }

  function scheduleChartRender() {
    // Bursts of events redraw once per frame, not once per event.
    if (chartFrame) return;
    chartFrame = requestAnimationFrame(() => {
      chartFrame = 0;
      renderChart();
    });
  }

  function renderChart() {
    const { starts, counts } = model.series;
    const totals = starts.map((_, index) => sum(TYPES.map((type) => counts[type][index])));
    const busiest = totals.indexOf(Math.max(...totals));
    const total = sum(totals);
    $("chart-note").textContent =
      total > 0
        ? `${numberFormat.format(total)} in the last 24 h · busiest ${hourFormat.format(new Date(starts[busiest]))} (${totals[busiest]})`
        : "none in the last 24 hours";
    if (!chart) return;
    chart.data.labels = starts.map((start) => hourFormat.format(new Date(start)));
    TYPES.forEach((type, index) => {
      chart.data.datasets[index].data = counts[type].slice();
    });
    chart.update("none");
  }

  let seriesTimer = 0;

  function scheduleSeriesResync(delay) {
    clearTimeout(seriesTimer);
    seriesTimer = setTimeout(resyncSeries, delay);
  }

  /** The hourly series again from GET /api/stats: for deletions the page could not
   *  place on the chart (their detection was never seen here), and now and then. */
  async function resyncSeries() {
    scheduleSeriesResync(SERIES_RESYNC);
    const filter = { ...model.filter };
    const params = new URLSearchParams({ bucket: "hour", recent: "0" });
    if (filter.camera !== null) params.set("camera", filter.camera);
    if (filter.vehicle_type !== null) params.set("vehicle_type", filter.vehicle_type);
    try {
      const stats = await fetchJSON(`${config.statsUrl}?${params}`);
      if (filter.camera !== model.filter.camera || filter.vehicle_type !== model.filter.vehicle_type) return;
      setSeries(stats.series);
      renderChart();
      renderCounters(false);
    } catch (error) {
      if (error.signedOut) signedOut();
      // Otherwise keep the chart as it is; the next resync tries again.
    }
  }

  // --- Per-camera bars --------------------------------------------------------------------------

  function renderCameras() {
    const entries = Object.entries(model.byCamera)
      .filter(([, count]) => count > 0)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const most = Math.max(1, ...entries.map(([, count]) => count));
    const rows = entries.map(([name, count]) => {
      const row = document.createElement("li");
      row.className = "bar-row";
      const label = document.createElement("span");
      label.className = "bar-name";
      label.textContent = name;
      label.title = name;
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${(100 * count) / most}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-count";
      value.textContent = numberFormat.format(count);
      row.append(label, track, value);
      return row;
    });
    $("camera-bars").replaceChildren(...rows);
    $("cameras-empty").hidden = rows.length > 0;
  }

  // --- Filter -------------------------------------------------------------------------------------

  const cameraSelect = $("filter-camera");
  const typeSelect = $("filter-type");

  function ensureCameraOption(name) {
    if ([...cameraSelect.options].some((option) => option.value === name)) return;
    const option = new Option(name, name);
    const after = [...cameraSelect.options].slice(1).find((other) => other.value.localeCompare(name) > 0);
    cameraSelect.add(option, after || null);
  }

  function syncFilterControls() {
    if (model.filter.camera !== null) ensureCameraOption(model.filter.camera);
    cameraSelect.value = model.filter.camera || "";
    typeSelect.value = model.filter.vehicle_type || "";
  }

  function filterQuery(filter) {
    const params = new URLSearchParams();
    if (filter.camera !== null) params.set("camera", filter.camera);
    if (filter.vehicle_type !== null) params.set("vehicle_type", filter.vehicle_type);
    return params;
  }

  function setFilter(filter) {
    // From now on only events of this filter count; the snapshot below replaces the rest.
    model.filter = filter;
    const query = filterQuery(filter).toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
    sendSubscribe();
    feed.update();
    reload();
  }

  function filterFromControls() {
    return { camera: cameraSelect.value || null, vehicle_type: typeSelect.value || null };
  }

  cameraSelect.addEventListener("change", () => setFilter(filterFromControls()));
  typeSelect.addEventListener("change", () => setFilter(filterFromControls()));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    setFilter(filterFromControls());
  });
  $("filter-clear").addEventListener("click", () => setFilter({ camera: null, vehicle_type: null }));

  // --- Snapshots from the server ------------------------------------------------------------------

  class SignedOut extends Error {
    constructor() {
      super("signed out");
      this.signedOut = true;
    }
  }

  async function fetchJSON(url, signal) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal,
    });
    // An expired session is redirected to the login page (an HTML answer).
    const json = (response.headers.get("Content-Type") || "").includes("json");
    if (response.status === 401 || response.status === 403 || (response.ok && !json)) throw new SignedOut();
    if (!response.ok) {
      const error = new Error(`the server answered ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  let reloadController = null;
  let reloadAttempts = 0;
  let reloadTimer = 0;

  /** A fresh snapshot for the current filter, then the events after it. */
  async function reload() {
    clearTimeout(reloadTimer);
    if (reloadController) reloadController.abort();
    const controller = (reloadController = new AbortController());
    const query = filterQuery(model.filter);
    query.set("format", "json");
    try {
      const state = await fetchJSON(`${config.stateUrl}?${query}`, controller.signal);
      if (controller !== reloadController) return;
      reloadController = null;
      reloadAttempts = 0;
      applyState(state);
      hideBanner();
      // The socket may have passed the snapshot's seq already (those events went
      // to the old state): have the server replay from the snapshot. Events that
      // arrive before the replay are applied once; their replayed copies are skipped.
      // (A socket still connecting asks for it when it opens: see onOpen.)
      send({ type: "resume", after: state.seq });
    } catch (error) {
      if (error.name === "AbortError" || controller !== reloadController) return;
      reloadController = null;
      if (error.signedOut) return signedOut();
      reloadAttempts += 1;
      const delay = backoff(reloadAttempts);
      showBanner(`Could not load the dashboard data (${error.message}). Trying again in ${Math.round(delay / 1000)} s.`);
      reloadTimer = setTimeout(reload, delay);
    }
  }

  function showBanner(text) {
    const banner = $("banner");
    banner.textContent = text;
    banner.hidden = false;
  }

  function hideBanner() {
    $("banner").hidden = true;
  }

  // --- The socket -------------------------------------------------------------------------------------

  const connection = {
    socket: null,
    state: "connecting",
    attempts: 0, // failed attempts in a row
    timer: 0, // the pending reconnect
    retryAt: 0,
    stableTimer: 0,
    after: null, // the ?after= the current socket was opened with
    lastMessageAt: 0,
    pingSentAt: 0,
    held: false, // tests: reconnects wait until released
    signedOut: false,
  };

  function backoff(attempt) {
    const base = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1));
    // Jitter, so that every dashboard does not come back at the same instant
    // after a server restart.
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${config.socketPath}?after=${encodeURIComponent(model.seq)}`;
  }

  function connect() {
    clearTimeout(connection.timer);
    connection.timer = 0;
    if (connection.signedOut || connection.socket) return;
    if (connection.held) {
      setConnectionState("reconnecting", "paused");
      return;
    }
    setConnectionState(connection.attempts ? "reconnecting" : "connecting", "");
    connection.after = model.seq;
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (error) {
      scheduleReconnect();
      return;
    }
    connection.socket = socket;
    // A socket given up on (heartbeat) may still fire events: only the current one counts.
    socket.addEventListener("open", () => socket === connection.socket && onOpen());
    socket.addEventListener("message", (event) => socket === connection.socket && onMessage(event));
    socket.addEventListener("close", (event) => socket === connection.socket && onClose(event));
  }

  function onOpen() {
    connection.lastMessageAt = Date.now();
    connection.pingSentAt = 0;
    setConnectionState("connected", "");
    sendSubscribe();
    // A snapshot applied while we were connecting moved the position.
    if (connection.after !== model.seq) send({ type: "resume", after: model.seq });
    clearTimeout(connection.stableTimer);
    connection.stableTimer = setTimeout(() => (connection.attempts = 0), STABLE_AFTER);
  }

  function onMessage(event) {
    connection.lastMessageAt = Date.now();
    connection.pingSentAt = 0;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    switch (message.type) {
      case "new_detection":
      case "deletion":
        applyEvent(message);
        break;
      case "reset":
        // The server cannot replay from our seq: start again from a snapshot.
        reload();
        break;
      case "error":
        console.warn("dashboard: the server refused a message:", message.code, message.detail);
        break;
      default: // pong, subscribed
    }
  }

  function onClose(event) {
    connection.socket = null;
    clearTimeout(connection.stableTimer);
    if (event.code === 4401) return signedOut();
    scheduleReconnect();
  }

  function scheduleReconnect() {
    connection.attempts += 1;
    const delay = backoff(connection.attempts);
    connection.retryAt = Date.now() + delay;
    connection.timer = setTimeout(connect, delay);
    showWaiting();
  }

  /** Give up on the current socket (it stopped answering) and reconnect. */
  function dropSocket() {
    const socket = connection.socket;
    connection.socket = null;
    if (socket) socket.close();
    scheduleReconnect();
  }

  function reconnectNow() {
    if (connection.socket || connection.signedOut) return;
    connect();
  }

  function send(message) {
    const socket = connection.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  function sendSubscribe() {
    const { camera, vehicle_type: type } = model.filter;
    send({ type: "subscribe", cameras: camera === null ? null : [camera], vehicle_types: type === null ? null : [type] });
  }

  function signedOut() {
    connection.signedOut = true;
    clearTimeout(connection.timer);
    if (connection.socket) {
      const socket = connection.socket;
      connection.socket = null;
      socket.close();
    }
    setConnectionState("signed-out", "your session has ended");
  }

  const CONNECTION_LABELS = {
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    "signed-out": "Signed out",
  };

  function setConnectionState(state, detail) {
    connection.state = state;
    const element = $("connection");
    element.dataset.state = state;
    $("connection-label").textContent = CONNECTION_LABELS[state];
    $("connection-detail").textContent = detail || (state === "connected" ? "live" : "");
    $("connection-retry").hidden = !(state === "reconnecting" || state === "offline") || connection.held;
    $("connection-login").hidden = state !== "signed-out";
  }

  function showWaiting() {
    if (connection.socket || connection.signedOut || !connection.timer) return;
    const offline = navigator.onLine === false || connection.attempts > OFFLINE_AFTER_ATTEMPTS;
    const seconds = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
    setConnectionState(offline ? "offline" : "reconnecting", `retrying in ${seconds} s`);
  }

  function heartbeat() {
    const socket = connection.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    // A laptop lid or a dead NAT mapping leaves a socket that looks open but is
    // not: a ping with no answer tells.
    if (connection.pingSentAt && now - connection.pingSentAt > HEARTBEAT_GRACE) {
      dropSocket();
    } else if (!connection.pingSentAt && now - connection.lastMessageAt > HEARTBEAT_IDLE) {
      connection.pingSentAt = now;
      send({ type: "ping" });
    }
  }

  $("connection-retry").addEventListener("click", reconnectNow);
  window.addEventListener("online", () => {
    connection.attempts = 0;
    reconnectNow();
  });
  window.addEventListener("offline", showWaiting);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") reconnectNow();
  });
  window.addEventListener("pageshow", (event) => {
    // Back from the back/forward cache: the page missed everything meanwhile.
    if (event.persisted) reload();
  });

  // --- Snapshot dialog -----------------------------------------------------------------------------

  const detail = {
    dialog: $("detail"),
    image: $("detail-image"),
    box: $("detail-bbox"),
    id: null,
    bbox: null,

    open(id) {
      const detection = model.detections.get(id);
      if (!detection) return;
      this.id = id;
      $("detail-deleted").hidden = true;
      this.fill(detection);
      if (!this.dialog.open) this.dialog.showModal();
      // The stored record adds when it was received, and says if it is gone.
      fetchJSON(`${config.detectionsUrl}${encodeURIComponent(id)}/`)
        .then((stored) => this.id === id && this.fill(stored))
        .catch((error) => {
          if (error.status === 404) this.deleted(id);
        });
    },

    fill(detection) {
      const plate = detection.plate || "no plate";
      $("detail-title").textContent = `${capitalise(detection.vehicle_type)} · ${plate}`;
      const url = detection.image_url;
      $("detail-frame").hidden = !url;
      $("detail-no-image").hidden = Boolean(url);
      const link = $("detail-open-image");
      link.hidden = !url;
      if (url) {
        link.href = url;
        if (this.image.getAttribute("src") !== url) {
          this.box.hidden = true;
          this.image.src = url;
        }
        this.image.alt = `Snapshot: ${detection.vehicle_type} at ${detection.camera}`;
      }
      this.bbox = Array.isArray(detection.bbox) && detection.bbox.length === 4 ? detection.bbox : null;
      this.placeBox();
      const facts = [
        ["Plate", detection.plate || "—"],
        ["Vehicle type", capitalise(detection.vehicle_type)],
        ["Camera", detection.camera],
        ["Detected", fullTime(detection.time)],
        ["Received", detection.received_at ? fullTime(detection.received_at) : "—"],
        ["Confidence", typeof detection.confidence === "number" ? `${Math.round(detection.confidence * 100)} %` : "—"],
        ["Tracking id", detection.tracking_id],
        ["Detection id", String(detection.id)],
      ];
      if (this.bbox) facts.push(["Bounding box", `x ${this.bbox[0]}, y ${this.bbox[1]}, ${this.bbox[2]} × ${this.bbox[3]} px`]);
      $("detail-facts").replaceChildren(
        ...facts.map(([name, value]) => {
          const pair = document.createElement("div");
          const term = document.createElement("dt");
          term.textContent = name;
          const description = document.createElement("dd");
          description.textContent = value;
          pair.append(term, description);
          return pair;
        })
      );
      const admin = $("detail-admin");
      admin.hidden = !config.adminChangeUrl;
      if (config.adminChangeUrl) {
        admin.href = config.adminChangeUrl.replace("/0/", `/${encodeURIComponent(detection.id)}/`);
      }
    },

    /** The bounding box, in percent of the snapshot, once its size is known. */
    placeBox() {
      const { naturalWidth: width, naturalHeight: height } = this.image;
      if (!this.bbox || !width || !height || !this.image.complete) {
        this.box.hidden = true;
        return;
      }
      const [x, y, w, h] = this.bbox;
      Object.assign(this.box.style, {
        left: `${(100 * x) / width}%`,
        top: `${(100 * y) / height}%`,
        width: `${(100 * w) / width}%`,
        height: `${(100 * h) / height}%`,
      });
      this.box.hidden = false;
    },

    deleted(id) {
      if (this.id === id && this.dialog.open) $("detail-deleted").hidden = false;
    },
  };

  detail.image.addEventListener("load", () => detail.placeBox());
  $("detail-close").addEventListener("click", () => detail.dialog.close());
  detail.dialog.addEventListener("click", (event) => {
    // A click on the backdrop lands on the <dialog> itself.
    if (event.target === detail.dialog) detail.dialog.close();
  });
  detail.dialog.addEventListener("close", () => (detail.id = null));

  // --- Start ---------------------------------------------------------------------------------------

  chart = makeChart();
  applyState(JSON.parse($("dashboard-state").textContent));
  connect();
  setInterval(showWaiting, 1000);
  setInterval(heartbeat, 5000);
  setInterval(() => rollSeries(Date.now()) && renderChart(), 60 * 1000);
  scheduleSeriesResync(SERIES_RESYNC);

  window.dashboard = {
    model,
    get socket() {
      return connection.socket;
    },
    get lastSeq() {
      return model.seq;
    },
    get connectionState() {
      return connection.state;
    },
    get chart() {
      return chart;
    },
    reload,
    reconnectNow,
    /** Tests: let reconnects wait (the socket stays down) until released. */
    holdReconnects() {
      connection.held = true;
    },
    releaseReconnects() {
      connection.held = false;
      reconnectNow();
    },
  };
})();
