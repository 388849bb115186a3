/* The feed: the latest detections, newest on top, each row a clone of the
 * template's #feed-item filled with textContent only. A click opens the dialog. */

import { $, capitalise, fullTime, shortTime } from "./dom.js";
import { model } from "./model.js";
import { detail } from "./detail.js";

const FEED_LIMIT = 40; // rows in the feed; the snapshot carries as many (FEED_SIZE in detections/dashboard/views.py)

export const feed = {
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
    showPlate(row, detection.plate);
    row.querySelector(".feed-camera").textContent = detection.camera;
    const time = row.querySelector(".feed-time");
    time.textContent = shortTime(detection.time);
    time.dateTime = detection.time;
    time.title = fullTime(detection.time);
    this.rows.set(detection.id, row);
    return row;
  },

  /** A corrected read: its row, if the feed shows it, says the new plate. */
  setPlate(id, plate) {
    const row = this.rows.get(id);
    if (row) showPlate(row, plate);
  },

  update() {
    const count = this.list.children.length;
    $("feed-empty").hidden = count > 0;
    const { camera, vehicle_type: type } = model.filter;
    const scope = [camera, type && capitalise(type)].filter(Boolean).join(" · ");
    $("feed-note").textContent = scope ? `${scope} · latest on top` : "latest on top";
  },
};

function showPlate(row, text) {
  const plate = row.querySelector(".plate");
  plate.textContent = text || "no plate";
  plate.classList.toggle("no-plate", !text);
}

/** The inline thumbnail of a live event, else the stored one's URL. */
function thumbnailSource(detection) {
  if (typeof detection.image === "string" && /^[A-Za-z0-9+/]+={0,2}$/.test(detection.image)) {
    return `data:image/jpeg;base64,${detection.image}`;
  }
  return detection.thumbnail_url || null;
}

feed.list.addEventListener("click", (event) => {
  const row = event.target.closest(".feed-item");
  if (row) detail.open(Number(row.dataset.id));
});
