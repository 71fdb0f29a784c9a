// GraphQL over HTTP with the user's key. The key is typed once and kept in sessionStorage
// (this tab, until it closes), never in localStorage: another tab or a later visit asks again.

const KEY = "segmentql:apiKey";
// A 429 is retried once, after the Retry-After it names but never longer than this: a page
// waiting minutes without a word is worse than saying so.
const MAX_WAIT_S = 10;

// What the page is told: the key was refused (it is forgotten by then), and a rate-limited
// request waits `seconds` before its one retry (0: the wait is over).
const listeners = { keyRefused() {}, waiting() {} };

export function listen(handlers) {
  Object.assign(listeners, handlers);
}

export function storedKey() {
  return window.sessionStorage.getItem(KEY) || "";
}

export function keepKey(key) {
  if (key) window.sessionStorage.setItem(KEY, key);
  else window.sessionStorage.removeItem(KEY);
}

// The messages of GraphQL errors, as one line.
export function messages(errors) {
  return errors.map((error) => error.message).join("; ");
}

// A GraphQL answer that could not be had at all (network, refused key): shown in the banner.
export class RequestFailed extends Error {}

// POST one operation; resolves to {data, errors} (errors: [] when none). A refusal before
// GraphQL ran (401, 429, ...) carries GraphQL-shaped errors too: they become RequestFailed.
// A refused key is dropped from sessionStorage, so the page does not send it again.
export async function graphql(query, variables = {}) {
  const key = storedKey();
  if (!key) throw new RequestFailed("Type your API key above to start.");
  let response = await post(key, query, variables);
  if (response.status === 429) {
    const seconds = Math.min(MAX_WAIT_S, Math.max(1, Number.parseInt(response.headers.get("Retry-After"), 10) || 1));
    listeners.waiting(seconds);
    await new Promise((resolve) => { setTimeout(resolve, seconds * 1000); });
    listeners.waiting(0);
    response = await post(key, query, variables);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new RequestFailed(`The service answered HTTP ${response.status} without JSON.`);
  }
  const errors = body.errors || [];
  if (!response.ok || !("data" in body)) {
    const message = messages(errors) || `HTTP ${response.status}`;
    if (response.status !== 401) throw new RequestFailed(message);
    if (storedKey() === key) keepKey("");
    listeners.keyRefused();
    throw new RequestFailed(`The API key was refused (${message}): type a valid key.`);
  }
  return { data: body.data, errors };
}

async function post(key, query, variables) {
  try {
    return await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new RequestFailed(`The service cannot be reached (${error.message}).`);
  }
}
