/* What the page shows, as data. sync.js changes it; the other modules render it. */

const REMEMBERED_LIMIT = 5000; // detections kept in memory, to place deletions on the chart

export const model = {
  seq: 0, // the last event applied (or included in the snapshot)
  total: 0, // every stored detection, whatever the filter (`count` of events)
  byType: {},
  byCamera: {},
  series: { starts: [], counts: {} }, // hour starts (ms) and per-type counts per hour
  filter: { camera: null, vehicle_type: null },
  detections: new Map(), // id -> detection, for the dialog and for deletions on the chart
};

export function matchesFilter(event) {
  return (
    (model.filter.camera === null || event.camera === model.filter.camera) &&
    (model.filter.vehicle_type === null || event.vehicle_type === model.filter.vehicle_type)
  );
}

export function remember(detection) {
  model.detections.delete(detection.id);
  model.detections.set(detection.id, detection);
  if (model.detections.size > REMEMBERED_LIMIT) {
    // Maps iterate in insertion order: the first key is the oldest.
    model.detections.delete(model.detections.keys().next().value);
  }
}
