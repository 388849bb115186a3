/* The camera and vehicle-type filter controls. Without JavaScript the same form
 * reloads the page; here a change is applied in place (sync.js's setFilter). */

import { $ } from "./dom.js";
import { model } from "./model.js";

const cameraSelect = $("filter-camera");
const typeSelect = $("filter-type");

/** A camera first seen in an event gets its option, in alphabetical order. */
export function ensureCameraOption(name) {
  if ([...cameraSelect.options].some((option) => option.value === name)) return;
  const option = new Option(name, name);
  const after = [...cameraSelect.options].slice(1).find((other) => other.value.localeCompare(name) > 0);
  cameraSelect.add(option, after || null);
}

export function syncFilterControls() {
  if (model.filter.camera !== null) ensureCameraOption(model.filter.camera);
  cameraSelect.value = model.filter.camera || "";
  typeSelect.value = model.filter.vehicle_type || "";
}

export function filterQuery(filter) {
  const params = new URLSearchParams();
  if (filter.camera !== null) params.set("camera", filter.camera);
  if (filter.vehicle_type !== null) params.set("vehicle_type", filter.vehicle_type);
  return params;
}

function filterFromControls() {
  return { camera: cameraSelect.value || null, vehicle_type: typeSelect.value || null };
}

/** Calls `change(filter)` whenever the controls ask for another filter. */
export function onFilterChange(change) {
  cameraSelect.addEventListener("change", () => change(filterFromControls()));
  typeSelect.addEventListener("change", () => change(filterFromControls()));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    change(filterFromControls());
  });
  $("filter-clear").addEventListener("click", () => change({ camera: null, vehicle_type: null }));
}
