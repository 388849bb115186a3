/* The page kept in step with the server.
 *
 * How it stays exact: the page starts from a snapshot that carries the `seq`
 * of the last event it includes (detections/dashboard/views.py). Every event
 * with a higher seq is applied once, in order; anything at or below is a replay
 * of something already counted and is skipped. After a drop the socket
 * reconnects with ?after=<last seq> and the server replays what was missed
 * (socket.js). A new snapshot (filter change, `reset`) moves the position back
 * to its own seq and asks the server to resume from there. */

import { $, TYPES, config } from "./dom.js";
import { matchesFilter, model, remember } from "./model.js";
import { fetchJSON } from "./api.js";
import { addToSeries, renderChart, setSeries } from "./charts.js";
import { renderCameras, renderCounters, showLastEvent } from "./stats.js";
import { feed } from "./feed.js";
import { detail } from "./detail.js";
import { alertScope, alerts } from "./alerts.js";
import { ensureCameraOption, filterQuery, syncFilterControls } from "./filter.js";
import { backoff, send, sendSubscribe, signedOut } from "./socket.js";

export const SERIES_RESYNC = 5 * 60 * 1000;

/** Replace everything with a snapshot from the server. */
export function applyState(state) {
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
export function applyEvent(event) {
  if (!Number.isInteger(event.seq) || event.seq <= model.seq) return;
  model.seq = event.seq;
  showLastEvent();
  if (event.type === "alert") {
    // Its seq counts for resuming, nothing else: its detection came as its own
    // new_detection just before, and the counts are the detections'.
    if (matchesFilter(alertScope(event))) alerts.add(event);
    return;
  }
  // Visits, sites and journeys have views of their own (sites.js, routes.js); here they only move the position.
  if (event.type === "visit" || event.type === "site" || event.type === "journey") return;
  // A correction changes no count: the plate of what the page shows, whatever the filter
  // (the event names no vehicle type; a detection the page holds matched when it came).
  if (event.type === "detection_updated") return correctDetection(event);
  if (Number.isInteger(event.count)) model.total = event.count;
  // The alert stays when its detection goes, whatever the filter shows.
  if (event.type === "deletion") alerts.detectionDeleted(event.deleted_id);
  // The server filters too, but not the events it replays for ?after= before
  // our subscribe arrives, nor those already on their way when it changes.
  if (matchesFilter(event)) {
    if (event.type === "new_detection") addDetection(event);
    else if (event.type === "deletion") removeDetection(event);
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

function correctDetection(event) {
  const known = model.detections.get(event.id);
  if (known) model.detections.set(event.id, { ...known, plate: event.plate });
  feed.setPlate(event.id, event.plate);
  detail.corrected(event.id, event.plate);
}

// --- The series, again from the server -------------------------------------------------

let seriesTimer = 0;

export function scheduleSeriesResync(delay) {
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

// --- Filter -------------------------------------------------------------------------------

export function setFilter(filter) {
  // From now on only events of this filter count; the snapshot below replaces the rest.
  model.filter = filter;
  const query = filterQuery(filter).toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
  sendSubscribe();
  feed.update();
  alerts.render();
  reload();
}

// --- Snapshots from the server ------------------------------------------------------------

let reloadController = null;
let reloadAttempts = 0;
let reloadTimer = 0;

/** A fresh snapshot for the current filter, then the events after it. */
export async function reload() {
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
    // (A socket still connecting asks for it when it opens: see socket.js's onOpen.)
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

window.addEventListener("pageshow", (event) => {
  // Back from the back/forward cache: the page missed everything meanwhile.
  if (event.persisted) reload();
});
