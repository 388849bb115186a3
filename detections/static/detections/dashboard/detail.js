/* The snapshot dialog: one detection's full snapshot with its bounding box, and
 * its facts. It opens from what the page knows, then fills in the stored record. */

import { $, capitalise, config, fullTime } from "./dom.js";
import { model } from "./model.js";
import { fetchJSON } from "./api.js";

export const detail = {
  dialog: $("detail"),
  image: $("detail-image"),
  box: $("detail-bbox"),
  id: null,
  bbox: null,

  /** `fallback`: what to show of a detection the page has not remembered (an alert's). */
  open(id, fallback = null) {
    const detection = model.detections.get(id) || fallback;
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
