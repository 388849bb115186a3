/* The snapshot dialog: one detection's full snapshot with its bounding box, and
 * its facts. It opens from what the page knows, then fills in the stored record.
 *
 * For users who may correct a read (the template renders the form only for
 * them), the plate can be corrected here: PATCH /api/detections/{id}/ with the
 * page's session, the API's refusal shown beside the field. The feed follows
 * the socket's `detection_updated`, on this page as on every other (sync.js). */

import { $, capitalise, config, fullTime } from "./dom.js";
import { model } from "./model.js";
import { fetchJSON, sendJSON } from "./api.js";
import { signedOut } from "./socket.js";

export const detail = {
  dialog: $("detail"),
  image: $("detail-image"),
  box: $("detail-bbox"),
  id: null,
  bbox: null,
  shown: null, // the detection the dialog shows
  plateFromEvents: undefined, // its plate as the last detection_updated since it opened says
  // The correction form: absent for users who may not correct.
  form: $("detail-correct"),
  plateInput: $("detail-plate"),
  plateShown: null, // the plate the input was last set to: a different value is the user's edit

  /** `fallback`: what to show of a detection the page has not remembered (an alert's). */
  open(id, fallback = null) {
    const detection = model.detections.get(id) || fallback;
    if (!detection) return;
    this.id = id;
    this.plateFromEvents = undefined;
    $("detail-deleted").hidden = true;
    if (this.form) this.resetCorrection();
    this.fill(detection);
    if (!this.dialog.open) this.dialog.showModal();
    // The stored record adds when it was received, and says if it is gone.
    fetchJSON(`${config.detectionsUrl}${encodeURIComponent(id)}/`)
      // A correction whose event came while this was on its way is newer than the answer may be.
      .then((stored) => {
        if (this.id !== id) return;
        this.fill(this.plateFromEvents === undefined ? stored : { ...stored, plate: this.plateFromEvents });
      })
      .catch((error) => {
        if (error.status === 404) this.deleted(id);
      });
  },

  fill(detection) {
    this.shown = detection;
    if (this.form) this.showPlate(detection.plate || "");
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

  /** A `detection_updated` event: the shown detection's plate was corrected (here or elsewhere). */
  corrected(id, plate) {
    if (this.id !== id) return;
    this.plateFromEvents = plate;
    if (this.shown) this.fill({ ...this.shown, plate });
  },

  // --- Correcting the plate ------------------------------------------------------------------

  resetCorrection() {
    this.plateShown = null;
    this.plateInput.value = "";
    this.correctionError("");
    $("detail-plate-status").textContent = "";
  },

  /** The stored plate in the input, unless the user is editing it. */
  showPlate(plate) {
    if (this.plateShown === null || this.plateInput.value === this.plateShown) this.plateInput.value = plate;
    this.plateShown = plate;
  },

  correctionError(text) {
    const error = $("detail-plate-error");
    error.textContent = text;
    error.hidden = !text;
    if (text) this.plateInput.setAttribute("aria-invalid", "true");
    else this.plateInput.removeAttribute("aria-invalid");
  },

  async correct() {
    const id = this.id;
    const plate = this.plateInput.value;
    const save = $("detail-save");
    const status = $("detail-plate-status");
    this.correctionError("");
    status.textContent = "Saving…";
    save.disabled = true;
    let answer;
    try {
      answer = await sendJSON(`${config.detectionsUrl}${encodeURIComponent(id)}/`, "PATCH", { plate });
    } catch (error) {
      answer = { ok: false, status: 0, body: null };
    } finally {
      save.disabled = false;
    }
    if (this.id !== id) return; // another detection is shown now
    status.textContent = "";
    if (answer.ok) {
      this.plateShown = null; // the stored plate replaces the edit
      this.fill(answer.body);
      status.textContent = "Saved";
    } else if (answer.body) {
      // The API's own words: which field, and why (a bad plate, no permission, gone).
      this.correctionError(answer.body.detail || answer.body.error || `Refused (${answer.status}).`);
      if (answer.status === 401) signedOut();
    } else if (answer.status) {
      // Not the API's answer (a proxy's error page, say).
      this.correctionError(`Not saved: the server answered ${answer.status}. Try again.`);
    } else {
      this.correctionError("Not saved: the server could not be reached. Try again.");
    }
  },
};

detail.image.addEventListener("load", () => detail.placeBox());
$("detail-close").addEventListener("click", () => detail.dialog.close());
detail.dialog.addEventListener("click", (event) => {
  // A click on the backdrop lands on the <dialog> itself.
  if (event.target === detail.dialog) detail.dialog.close();
});
detail.dialog.addEventListener("close", () => (detail.id = null));
if (detail.form) {
  detail.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (detail.id !== null) detail.correct();
  });
  detail.plateInput.addEventListener("input", () => {
    detail.correctionError("");
    $("detail-plate-status").textContent = "";
  });
}
