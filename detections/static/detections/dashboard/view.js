/* What the sites and routes views (sites.js, routes.js) share: how such a page
 * starts from its seq, applies each event once, loads its state again for what
 * it has not loaded, says it could not load, and the handles it gives the
 * browser tests. The main dashboard starts otherwise (main.js, sync.js): from
 * a snapshot in the page, with a filter.
 *
 * How a view stays exact: the page carries the log's seq read before its state
 * is loaded from the API (detections/dashboard/views.py, sites_page and
 * routes_page), and the socket resumes from that seq once the state is in.
 * What an event both in the loaded state and replayed does is the view's to
 * make harmless (each says how in its header). */

import { $, config } from "./dom.js";
import { model } from "./model.js";
import {
  connectionState,
  currentSocket,
  holdReconnects,
  releaseReconnects,
  send,
  signedOut,
  startSocket,
} from "./socket.js";

let view = null; // the started view: its load and its events

/** Start a view. `name` ("sites", "routes") names it in its messages and its test
 *  handles (window.sitesView, window.routesView). `load()` reads the state from
 *  the API and draws it, replacing what is drawn (reloadSoon calls it again); what
 *  it answers goes to `onLoaded`, which starts what else the page keeps up to date,
 *  before the socket opens. `events` maps an event type to what applies it, each
 *  event once, in order. `testHooks` holds the view's own handles for the tests,
 *  beside the ones every view has; they exist only with DASHBOARD_TEST_HOOKS on. */
export function startView({ name, load, events, onLoaded, testHooks }) {
  document.documentElement.classList.add("js");
  model.seq = config.seq;
  view = { load, events };
  load()
    .then((loaded) => {
      onLoaded(loaded);
      startSocket({ onEvent: applyEvent, onReset: () => location.reload() });
    })
    .catch((error) => {
      if (error.signedOut) signedOut();
      else {
        console.error(`${name}: the state did not load:`, error);
        showProblem(`The ${name} could not be loaded; reload the page to try again.`);
      }
    });
  if (config.testHooks) window[`${name}View`] = withTestHooks(testHooks);
}

/** One socket event. Anything at or below model.seq was applied already. */
function applyEvent(event) {
  if (!Number.isInteger(event.seq) || event.seq <= model.seq) return;
  model.seq = event.seq;
  if (Object.hasOwn(view.events, event.type)) view.events[event.type](event);
}

/** Something this page has not loaded (a site or route made, or made active, since):
 * load them all again. Events that come while the state is read may be older or
 * newer than it, so the socket replays from the position before the read, onto
 * the new state. */
let reloading = 0;
export function reloadSoon() {
  if (reloading) return;
  reloading = setTimeout(async () => {
    const from = model.seq;
    try {
      await view.load();
      model.seq = from;
      send({ type: "resume", after: from });
    } catch (error) {
      if (error.signedOut) signedOut();
    } finally {
      reloading = 0;
    }
  }, 500);
}

function showProblem(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

/** The handles every view gives the browser tests, and the view's own (copied
 *  as they are written, so that a getter stays a getter). */
function withTestHooks(own) {
  const hooks = {
    get seq() {
      return model.seq;
    },
    get connectionState() {
      return connectionState();
    },
    get socket() {
      return currentSocket();
    },
    /** Let reconnects wait (the socket stays down) until released. */
    holdReconnects,
    releaseReconnects,
  };
  return Object.defineProperties(hooks, Object.getOwnPropertyDescriptors(own || {}));
}

/** Chart.js, in the page's colours and font; null when the library did not load
 *  (the view works on without its charts). */
export function chartLibrary() {
  const Chart = window.Chart;
  if (!Chart) return null;
  const css = getComputedStyle(document.documentElement);
  Chart.defaults.color = css.getPropertyValue("--muted").trim();
  Chart.defaults.borderColor = css.getPropertyValue("--line").trim();
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  return Chart;
}
