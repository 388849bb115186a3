/* Watch-list alerts: a panel of the latest ones, newest on top, and a banner
 * for the newest one not yet dismissed on this page.
 *
 * The socket sends `alert` events only to users with the `view alert`
 * permission, and the template only renders the panel and the banner for them
 * (config.canViewAlerts): for anyone else every function here does nothing.
 *
 * An alert is not a detection: it changes no counter, and its detection has
 * already arrived as its own `new_detection` just before it (sync.js). What the
 * page holds is what arrived since it opened; dismissing is for this page only,
 * it does not acknowledge the alert on the server.
 *
 * Every string in an alert (rule, watch-list, plates, camera) is untrusted and
 * reaches the page through textContent or attributes only. */

import { $, capitalise, fullTime, shortTime } from "./dom.js";
import { model } from "./model.js";
import { detail } from "./detail.js";

const PANEL_LIMIT = 20; // alerts the panel shows
const KEPT_LIMIT = 200; // alerts held, so that clearing a filter shows the others again

const panel = $("alerts");
const list = $("alert-list");
const template = $("alert-item");
const banner = $("alert-banner");
const enabled = Boolean(panel && list && template && banner);

const held = []; // newest first (by seq)
const byId = new Map(); // alert_id -> alert
const rows = new Map(); // alert_id -> <li>, reused so a row keeps its state across renders
let bannerAlert = null;

/** Where an alert happened: its detection's camera and type, as new detections are filtered. */
export function alertScope(alert) {
  const detection = alert.detection || {};
  return {
    camera: detection.camera ?? alert.camera,
    vehicle_type: detection.vehicle_type ?? alert.vehicle_type,
  };
}

function matchesFilter(alert) {
  const { camera, vehicle_type: type } = alertScope(alert);
  return (
    (model.filter.camera === null || camera === model.filter.camera) &&
    (model.filter.vehicle_type === null || type === model.filter.vehicle_type)
  );
}

export const alerts = {
  enabled,

  /** One `alert` event (sync.js has checked its seq). */
  add(event) {
    if (!enabled || !Number.isInteger(event.alert_id)) return;
    // A snapshot older than what the page has seen makes the server replay
    // alerts already shown: one row each.
    if (byId.has(event.alert_id)) return;
    const alert = { ...event, detection: event.detection || {}, dismissed: false };
    byId.set(alert.alert_id, alert);
    const at = held.findIndex((other) => other.seq < alert.seq);
    held.splice(at === -1 ? held.length : at, 0, alert);
    while (held.length > KEPT_LIMIT) {
      const dropped = held.pop();
      byId.delete(dropped.alert_id);
      rows.get(dropped.alert_id)?.remove();
      rows.delete(dropped.alert_id);
    }
    this.render();
  },

  /** Its detection was deleted: the alert stays (the server keeps it), its snapshot is gone. */
  detectionDeleted(id) {
    if (!enabled) return;
    let changed = false;
    for (const alert of held) {
      if (alert.detection.id === id && !alert.detection.deleted) {
        alert.detection = { ...alert.detection, deleted: true };
        const item = rows.get(alert.alert_id);
        if (item) fill(item, alert);
        changed = true;
      }
    }
    if (changed) this.render();
  },

  /** The panel and the banner for the current filter. */
  render() {
    if (!enabled) return;
    const shown = held.filter(matchesFilter);
    list.replaceChildren(...shown.slice(0, PANEL_LIMIT).map(row));
    $("alerts-empty").hidden = shown.length > 0;
    const { camera, vehicle_type: type } = model.filter;
    const scope = [camera, type && capitalise(type)].filter(Boolean).join(" · ");
    $("alerts-note").textContent = `${scope ? `${scope} · ` : ""}since this page opened · newest on top`;
    renderBanner(shown.filter((alert) => !alert.dismissed));
  },

  /** Copies of what the page holds, newest first (the test hooks). */
  list() {
    return held.map((alert) => ({ ...alert }));
  },
};

function row(alert) {
  let item = rows.get(alert.alert_id);
  if (!item) {
    item = template.content.firstElementChild.cloneNode(true);
    item.dataset.alertId = String(alert.alert_id);
    watchImage(item);
    fill(item, alert);
    // Once: a row moved by a later render would otherwise flash again.
    item.classList.add("is-new");
    item.addEventListener("animationend", () => item.classList.remove("is-new"), { once: true });
    rows.set(alert.alert_id, item);
  }
  item.classList.toggle("is-dismissed", alert.dismissed);
  return item;
}

function renderBanner(waiting) {
  const newest = waiting[0] || null;
  bannerAlert = newest;
  banner.hidden = !newest;
  if (!newest) return;
  // Filled again only when it shows another alert (or its detection went), so its image does not reload.
  const shownAs = `${newest.alert_id}:${Boolean(newest.detection.deleted)}`;
  if (banner.dataset.shownAs !== shownAs) {
    banner.dataset.shownAs = shownAs;
    banner.dataset.alertId = String(newest.alert_id);
    fill(banner, newest);
  }
  const more = waiting.length - 1;
  $("alert-banner-more").textContent = more > 0 ? `${more} more not dismissed` : "";
  $("alert-banner-dismiss-all").hidden = more <= 0;
}

/** A snapshot that does not load (deleted since, say) shows as "no image". */
function watchImage(element) {
  const thumb = element.querySelector('[data-field="thumb"]');
  thumb.querySelector("img").addEventListener("error", () => thumb.classList.add("no-image"));
}

/** Fill an element's [data-field] parts (a panel row or the banner) from an alert. */
function fill(element, alert) {
  const detection = alert.detection;
  const field = (name) => element.querySelector(`[data-field="${name}"]`);
  element.dataset.type = detection.vehicle_type ?? alert.vehicle_type ?? "";

  const thumb = field("thumb");
  const image = thumb.querySelector("img");
  thumb.classList.remove("no-image");
  const source = detection.deleted ? null : detection.thumbnail_url;
  if (source) {
    image.src = source;
    image.alt = `Snapshot: ${detection.vehicle_type} at ${detection.camera}`;
  } else {
    image.removeAttribute("src");
    image.alt = "";
    thumb.classList.add("no-image");
  }

  field("rule").textContent = alert.rule;
  field("watchlist").textContent = alert.watchlist || "no watch-list";
  // A rule without a watch-list matches no plate: there is nothing to compare.
  const listed = Boolean(alert.matched_plate);
  field("plates").hidden = !listed;
  field("matched").textContent = alert.matched_plate || "";
  const read = field("read");
  read.textContent = detection.plate || "no plate";
  read.classList.toggle("no-plate", !detection.plate);
  const distance = field("distance");
  distance.dataset.distance = Number.isInteger(alert.distance) ? String(alert.distance) : "";
  distance.textContent = !Number.isInteger(alert.distance)
    ? ""
    : alert.distance === 0
      ? "exact match"
      : `edit distance ${alert.distance}`;
  field("vehicle-type").textContent = detection.vehicle_type ?? alert.vehicle_type ?? "";
  field("camera").textContent = detection.camera ?? alert.camera ?? "";
  const time = field("time");
  time.textContent = detection.time ? shortTime(detection.time) : "";
  time.dateTime = detection.time || "";
  time.title = detection.time ? fullTime(detection.time) : "";
  field("deleted").hidden = !detection.deleted;
}

function dismiss(alert) {
  alert.dismissed = true;
  rows.get(alert.alert_id)?.classList.add("is-dismissed");
}

/** The detection behind an alert, in the snapshot dialog; looking at it dismisses the alert. */
function openAlert(alert) {
  dismiss(alert);
  alerts.render();
  if (Number.isInteger(alert.detection.id)) detail.open(alert.detection.id, alert.detection);
}

if (enabled) {
  watchImage(banner);
  list.addEventListener("click", (event) => {
    const item = event.target.closest(".alert-item");
    const alert = item && byId.get(Number(item.dataset.alertId));
    if (alert) openAlert(alert);
  });
  $("alert-banner-open").addEventListener("click", () => bannerAlert && openAlert(bannerAlert));
  $("alert-banner-dismiss").addEventListener("click", () => {
    if (bannerAlert) dismiss(bannerAlert);
    alerts.render();
  });
  $("alert-banner-dismiss-all").addEventListener("click", () => {
    held.filter(matchesFilter).forEach(dismiss);
    alerts.render();
  });
  alerts.render();
}
