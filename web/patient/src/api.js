// Calls to the gateway: every answer is JSON; refusals are problem+json and become ApiError.

/** A refused call: its HTTP status and the server's words (title, detail). */
export class ApiError extends Error {
  constructor(status, title, detail, retryAfter) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail || title;
    this.retryAfter = retryAfter;
  }
}

/** The gateway did not answer at all (down, or the network is gone). */
export class UnreachableError extends Error {}

let token = null;

export function setToken(value) {
  token = value;
}

export function signedIn() {
  return token !== null;
}

/** Call the gateway; throw ApiError on a refusal, UnreachableError if it does not answer. */
export async function call(method, path, body) {
  return (await send(method, path, body, "application/json")).json().catch(() => null);
}

/** Fetch a file the signed-in patient may download (their report), as a Blob. */
export async function download(path, accept) {
  return (await send("GET", path, undefined, accept)).blob();
}

async function send(method, path, body, accept) {
  const headers = { Accept: accept };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (_) {
    throw new UnreachableError("the gateway cannot be reached");
  }
  if (!response.ok) {
    if (response.status === 401) token = null;
    const data = await response.json().catch(() => null);
    const title = (data && data.title) || `error ${response.status}`;
    throw new ApiError(response.status, title, data && data.detail, response.headers.get("Retry-After"));
  }
  return response;
}
