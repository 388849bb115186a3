/* The socket to /ws (protocol: docs/websocket.md): opened with ?after=<the last
 * seq applied>, so the server replays what the page missed; kept alive with a
 * heartbeat; reopened with back-off after a drop; its state shown in the top bar.
 *
 * Events and `reset` go to the handlers startSocket is given (sync.js), so this
 * module knows nothing of what the page does with them. */

import { $, config } from "./dom.js";
import { model } from "./model.js";

const BACKOFF_FIRST = 1000;
const BACKOFF_MAX = 30000;
const OFFLINE_AFTER_ATTEMPTS = 5; // failed attempts in a row before we say "offline"
const STABLE_AFTER = 10000; // a connection this old resets the back-off
const HEARTBEAT_IDLE = 25000; // ping after this long without a message...
const HEARTBEAT_GRACE = 10000; // ...and give the connection up if nothing comes back

const connection = {
  socket: null,
  state: "connecting",
  attempts: 0, // failed attempts in a row
  timer: 0, // the pending reconnect
  retryAt: 0,
  stableTimer: 0,
  after: null, // the ?after= the current socket was opened with
  lastMessageAt: 0,
  pingSentAt: 0,
  held: false, // tests: reconnects wait until released (holdReconnects, only behind the test hooks)
  signedOut: false,
};

let handlers = { event() {}, reset() {} };

/** Open the socket, and keep it open; `onEvent` gets each event, `onReset` the server's `reset`. */
export function startSocket({ onEvent, onReset }) {
  handlers = { event: onEvent, reset: onReset };
  connect();
  setInterval(showWaiting, 1000);
  setInterval(heartbeat, 5000);
}

export function currentSocket() {
  return connection.socket;
}

export function connectionState() {
  return connection.state;
}

export function backoff(attempt) {
  const base = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1));
  // Jitter, so that every dashboard does not come back at the same instant
  // after a server restart.
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${config.socketPath}?after=${encodeURIComponent(model.seq)}`;
}

function connect() {
  clearTimeout(connection.timer);
  connection.timer = 0;
  if (connection.signedOut || connection.socket) return;
  if (connection.held) {
    setConnectionState("reconnecting", "paused");
    return;
  }
  setConnectionState(connection.attempts ? "reconnecting" : "connecting", "");
  connection.after = model.seq;
  let socket;
  try {
    socket = new WebSocket(socketUrl());
  } catch (error) {
    scheduleReconnect();
    return;
  }
  connection.socket = socket;
  // A socket given up on (heartbeat) may still fire events: only the current one counts.
  socket.addEventListener("open", () => socket === connection.socket && onOpen());
  socket.addEventListener("message", (event) => socket === connection.socket && onMessage(event));
  socket.addEventListener("close", (event) => socket === connection.socket && onClose(event));
}

function onOpen() {
  connection.lastMessageAt = Date.now();
  connection.pingSentAt = 0;
  setConnectionState("connected", "");
  sendSubscribe();
  // A snapshot applied while we were connecting moved the position.
  if (connection.after !== model.seq) send({ type: "resume", after: model.seq });
  clearTimeout(connection.stableTimer);
  connection.stableTimer = setTimeout(() => (connection.attempts = 0), STABLE_AFTER);
}

function onMessage(event) {
  connection.lastMessageAt = Date.now();
  connection.pingSentAt = 0;
  let message;
  try {
    message = JSON.parse(event.data);
  } catch (error) {
    return;
  }
  switch (message.type) {
    case "new_detection":
    case "deletion":
    case "detection_updated": // a read's plate corrected
    case "alert": // only to users who may view alerts
    case "visit": // these two only to users who may view visits
    case "site":
    case "journey": // only to users who may view journeys
      handlers.event(message);
      break;
    case "reset":
      // The server cannot replay from our seq: start again from a snapshot.
      handlers.reset();
      break;
    case "error":
      console.warn("dashboard: the server refused a message:", message.code, message.detail);
      break;
    default: // pong, subscribed
  }
}

function onClose(event) {
  connection.socket = null;
  clearTimeout(connection.stableTimer);
  if (event.code === 4401) return signedOut();
  scheduleReconnect();
}

function scheduleReconnect() {
  connection.attempts += 1;
  const delay = backoff(connection.attempts);
  connection.retryAt = Date.now() + delay;
  connection.timer = setTimeout(connect, delay);
  showWaiting();
}

/** Give up on the current socket (it stopped answering) and reconnect. */
function dropSocket() {
  const socket = connection.socket;
  connection.socket = null;
  if (socket) socket.close();
  scheduleReconnect();
}

export function reconnectNow() {
  if (connection.socket || connection.signedOut) return;
  connect();
}

/** Tests: let reconnects wait (the socket stays down) until released. */
export function holdReconnects() {
  connection.held = true;
}

export function releaseReconnects() {
  connection.held = false;
  reconnectNow();
}

export function send(message) {
  const socket = connection.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

export function sendSubscribe() {
  const { camera, vehicle_type: type } = model.filter;
  send({ type: "subscribe", cameras: camera === null ? null : [camera], vehicle_types: type === null ? null : [type] });
}

/** The session has ended: stop for good and offer the login page. */
export function signedOut() {
  connection.signedOut = true;
  clearTimeout(connection.timer);
  if (connection.socket) {
    const socket = connection.socket;
    connection.socket = null;
    socket.close();
  }
  setConnectionState("signed-out", "your session has ended");
}

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  "signed-out": "Signed out",
};

function setConnectionState(state, detail) {
  connection.state = state;
  const element = $("connection");
  element.dataset.state = state;
  $("connection-label").textContent = CONNECTION_LABELS[state];
  $("connection-detail").textContent = detail || (state === "connected" ? "live" : "");
  $("connection-retry").hidden = !(state === "reconnecting" || state === "offline") || connection.held;
  $("connection-login").hidden = state !== "signed-out";
}

function showWaiting() {
  if (connection.socket || connection.signedOut || !connection.timer) return;
  const offline = navigator.onLine === false || connection.attempts > OFFLINE_AFTER_ATTEMPTS;
  const seconds = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
  setConnectionState(offline ? "offline" : "reconnecting", `retrying in ${seconds} s`);
}

function heartbeat() {
  const socket = connection.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const now = Date.now();
  // A laptop lid or a dead NAT mapping leaves a socket that looks open but is
  // not: a ping with no answer tells.
  if (connection.pingSentAt && now - connection.pingSentAt > HEARTBEAT_GRACE) {
    dropSocket();
  } else if (!connection.pingSentAt && now - connection.lastMessageAt > HEARTBEAT_IDLE) {
    connection.pingSentAt = now;
    send({ type: "ping" });
  }
}

$("connection-retry").addEventListener("click", reconnectNow);
window.addEventListener("online", () => {
  connection.attempts = 0;
  reconnectNow();
});
window.addEventListener("offline", showWaiting);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});
