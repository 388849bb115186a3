/* The counters, the time of the last event and the per-camera bars. */

import { $, clockFormat, numberFormat, sum } from "./dom.js";
import { model } from "./model.js";
import { seriesTotal } from "./charts.js";

const totalValue = $("total-count");
const typeTiles = new Map([...document.querySelectorAll(".counter-type")].map((tile) => [tile.dataset.type, tile]));

export function renderCounters(animate) {
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

export function showLastEvent() {
  const now = new Date();
  const element = $("last-event");
  element.textContent = clockFormat.format(now);
  element.dateTime = now.toISOString();
}

export function renderCameras() {
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
