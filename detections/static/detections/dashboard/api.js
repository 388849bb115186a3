/* JSON from the server's HTTP endpoints (the snapshot, the stats, one detection),
 * and the API's writes with the page's session (a correction). */

import { config } from "./dom.js";

/** The session has ended: the caller stops and says so instead of retrying. */
export class SignedOut extends Error {
  constructor() {
    super("signed out");
    this.signedOut = true;
  }
}

export async function fetchJSON(url, signal) {
  const response = await fetch(url, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    cache: "no-store",
    signal,
  });
  // An expired session is redirected to the login page (an HTML answer).
  const json = (response.headers.get("Content-Type") || "").includes("json");
  if (response.status === 401 || response.status === 403 || (response.ok && !json)) throw new SignedOut();
  if (!response.ok) {
    const error = new Error(`the server answered ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

/** A write to the API with the page's session: DRF's SessionAuthentication
 *  wants the CSRF token in a header. Answers `{ok, status, body}`, the body the
 *  API's JSON (a refusal's too, `{error, detail, field}`: the caller shows it),
 *  or null when the answer is not the API's (a proxy's error page). */
export async function sendJSON(url, method, data) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": config.csrfToken },
    cache: "no-store",
    body: JSON.stringify(data),
  });
  const json = (response.headers.get("Content-Type") || "").includes("json");
  return { ok: response.ok && json, status: response.status, body: json ? await response.json() : null };
}
