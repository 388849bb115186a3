/* What every part of the dashboard uses: element lookup, the page's config, the
 * number and time formats, and two small helpers. */

export const $ = (id) => document.getElementById(id);

/** The part of a cloned template (a card, a row) marked data-field="name". */
export function field(root, name) {
  return root.querySelector(`[data-field="${name}"]`);
}

// Written by the view (detections/dashboard/views.py) into a json_script tag.
export const config = JSON.parse($("dashboard-config").textContent);
export const TYPES = config.vehicleTypes;

export const HOUR = 3600 * 1000;

export const numberFormat = new Intl.NumberFormat();
export const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dayClockFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
export const hourFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
export const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
export const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);
export const sum = (values) => values.reduce((total, value) => total + value, 0);

export function shortTime(iso) {
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return iso;
  const sameDay = moment.toDateString() === new Date().toDateString();
  return (sameDay ? clockFormat : dayClockFormat).format(moment);
}

export function fullTime(iso) {
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? String(iso) : fullFormat.format(moment);
}
