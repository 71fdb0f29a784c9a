// GraphQL over HTTP with the user's key. The key is typed once and kept in sessionStorage
// (this tab, until it closes), never in localStorage: another tab or a later visit asks again.

const KEY = "segmentql:apiKey";

export function storedKey() {
  return window.sessionStorage.getItem(KEY) || "";
}

export function keepKey(key) {
  if (key) window.sessionStorage.setItem(KEY, key);
  else window.sessionStorage.removeItem(KEY);
}

// A GraphQL answer that could not be had at all (network, refused key): shown in the banner.
export class RequestFailed extends Error {}

// POST one operation; resolves to {data, errors} (errors: [] when none). A refusal before
// GraphQL ran (401, 429, ...) carries GraphQL-shaped errors too: they become RequestFailed.
export async function graphql(query, variables = {}) {
  const key = storedKey();
  if (!key) throw new RequestFailed("Type your API key above to start.");
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new RequestFailed(`The service cannot be reached (${error.message}).`);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new RequestFailed(`The service answered HTTP ${response.status} without JSON.`);
  }
  const errors = body.errors || [];
  if (!response.ok || !("data" in body)) {
    const message = errors.map((error) => error.message).join("; ") || `HTTP ${response.status}`;
    throw new RequestFailed(response.status === 401 ? `The API key was refused: ${message}` : message);
  }
  return { data: body.data, errors };
}
