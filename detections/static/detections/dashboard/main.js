/* The live dashboard: counters, the feed, the hourly chart and the per-camera
 * bars, kept in step with the /ws socket (protocol: docs/websocket.md).
 *
 * Native ES modules, loaded by the template as <script type="module">, with no
 * build step; imports are relative, so they resolve under whatever STATIC_URL
 * serves this file. Chart.js is a classic script the template loads first.
 *
 *   main.js    this entry: starts everything, and the test hooks
 *   dom.js     element lookup, the page's config, formats
 *   model.js   what the page shows, as data
 *   sync.js    snapshot, events, reload, filter change: how the page stays exact
 *   socket.js  the socket: resume, heartbeat, reconnect, the connection state
 *   api.js     JSON from the HTTP endpoints, and the API's writes (a correction)
 *   feed.js    the latest detections
 *   detail.js  the snapshot dialog, and the plate's correction (users who may correct)
 *   alerts.js  watch-list alerts: the panel and the banner (users who may view them)
 *   charts.js  the hourly chart and its series
 *   stats.js   the counters and the per-camera bars
 *   filter.js  the filter controls
 *
 * Untrusted text (plates, tracking ids, camera names) only ever reaches the
 * page through textContent or attributes, never as HTML. */

import { $, config } from "./dom.js";
import { model } from "./model.js";
import { alerts } from "./alerts.js";
import { currentChart, renderChart, rollSeries, startChart } from "./charts.js";
import { onFilterChange } from "./filter.js";
import { SERIES_RESYNC, applyEvent, applyState, reload, scheduleSeriesResync, setFilter } from "./sync.js";
import {
  connectionState,
  currentSocket,
  holdReconnects,
  releaseReconnects,
  reconnectNow,
  startSocket,
} from "./socket.js";

document.documentElement.classList.add("js");

onFilterChange(setFilter);
startChart();
applyState(JSON.parse($("dashboard-state").textContent));
startSocket({ onEvent: applyEvent, onReset: reload });
setInterval(() => rollSeries(Date.now()) && renderChart(), 60 * 1000);
scheduleSeriesResync(SERIES_RESYNC);

// Handles for the browser tests (tests/test_dashboard.py), only with the
// DASHBOARD_TEST_HOOKS setting on: a production page puts nothing on window,
// and nothing there can hold its reconnects.
if (config.testHooks) {
  window.dashboard = {
    model,
    get socket() {
      return currentSocket();
    },
    get lastSeq() {
      return model.seq;
    },
    get connectionState() {
      return connectionState();
    },
    get chart() {
      return currentChart();
    },
    /** The alerts the page holds, newest first (copies). */
    get alerts() {
      return alerts.list();
    },
    reload,
    reconnectNow,
    /** Let reconnects wait (the socket stays down) until released. */
    holdReconnects,
    releaseReconnects,
  };
}
