/* JSON from the server's HTTP endpoints (the snapshot, the stats, one detection). */

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
