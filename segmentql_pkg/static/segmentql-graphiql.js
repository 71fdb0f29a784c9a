// segmentql's GraphiQL. Every asset is served by segmentql itself: the page works offline,
// and its Content-Security-Policy allows scripts, styles and requests from segmentql only.
//
// A link may prefill the editors (`?query=...&variables=...`), never the headers: a link
// carrying `headers=` could make the page send a key of the link author's choosing (the
// user's work landing in the author's workspace). Headers are kept in this browser only
// when the user turns that on in GraphiQL's settings (off by default).
const params = new URLSearchParams(window.location.search);
const defaults = JSON.parse(document.getElementById("default-document").textContent);
const httpFetcher = GraphiQL.createFetcher({ url: window.location.pathname });

// Subscriptions run over a WebSocket at this same /graphql (the protocol `graphql-transport-ws`,
// github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md); queries and mutations are POSTed.
// GraphiQL passes the parsed editor (documentAST) with each run: the chosen operation's type
// decides. A subscription's results are given to GraphiQL as an async iterator.
function fetcher(params, options) {
  const operations = ((options && options.documentAST) || { definitions: [] }).definitions
    .filter((definition) => definition.kind === "OperationDefinition");
  const chosen = operations.find((op) => op.name && op.name.value === params.operationName) || operations[0];
  if (!chosen || chosen.operation !== "subscription") {
    return httpFetcher(params, options);
  }
  const headers = (options && options.headers) || {};
  const name = Object.keys(headers).find((key) => key.toLowerCase() === "authorization");
  return subscribe(params, name === undefined ? undefined : headers[name]);
}

// One subscription on its own socket: the key goes in connection_init (a browser cannot set
// headers on a WebSocket), the operation once the service acknowledged it. Each `next` payload
// is one result; `complete` ends it; an `error` or a socket closed abnormally (4401: a bad key)
// ends it with a result holding the error. When GraphiQL stops (its stop button, another run),
// it calls return(): the subscription is completed and the socket closed.
function subscribe(payload, authorization) {
  const url = new URL(window.location.pathname, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url, "graphql-transport-ws");
  const send = (message) => socket.send(JSON.stringify(message));
  const ready = []; // results received, not yet taken
  let waiting = null; // the resolve of a next() waiting for a result
  let done = false;

  function give(result) {
    if (done) return;
    if (waiting) waiting({ value: result, done: false });
    else ready.push(result);
    waiting = null;
  }
  function finish() {
    done = true;
    if (waiting) waiting({ value: undefined, done: true });
    waiting = null;
  }

  socket.onopen = () => send({ type: "connection_init", payload: { Authorization: authorization } });
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "connection_ack") send({ id: "1", type: "subscribe", payload: payload });
    else if (message.type === "ping") send({ type: "pong" });
    else if (message.type === "next") give(message.payload);
    else if (message.type === "error" || message.type === "complete") {
      if (message.type === "error") give({ errors: message.payload });
      finish();
      socket.close(1000);
    }
  };
  socket.onclose = (event) => {
    if (event.code !== 1000) {
      const why = event.reason || "the connection to segmentql was lost";
      give({ errors: [{ message: `${why} (socket closed ${event.code})` }] });
    }
    finish();
  };

  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      if (ready.length) return Promise.resolve({ value: ready.shift(), done: false });
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => (waiting = resolve));
    },
    return() {
      if (!done && socket.readyState === WebSocket.OPEN) send({ id: "1", type: "complete" });
      finish();
      socket.close(1000);
      return Promise.resolve({ value: undefined, done: true });
    },
  };
}

// GraphiQL 3 keeps every run's headers in its history (and favourites) even when headers
// are not to be kept; this storage leaves them out there unless the user turned keeping on.
const HISTORY_KEYS = ["graphiql:queries", "graphiql:favorites"];
const storage = {
  getItem: (key) => localStorage.getItem(key),
  setItem(key, value) {
    if (HISTORY_KEYS.includes(key) && localStorage.getItem("graphiql:shouldPersistHeaders") !== "true") {
      const lists = JSON.parse(value);
      Object.values(lists).forEach((items) => items.forEach((item) => delete item.headers));
      value = JSON.stringify(lists);
    }
    localStorage.setItem(key, value);
  },
  removeItem: (key) => localStorage.removeItem(key),
  get length() {
    return Object.keys(localStorage).filter((key) => key.startsWith("graphiql:")).length;
  },
  clear() {
    Object.keys(localStorage).filter((key) => key.startsWith("graphiql:")).forEach((key) => localStorage.removeItem(key));
  },
};

function SegmentqlGraphiQL() {
  return React.createElement(GraphiQL, {
    fetcher: fetcher,
    storage: storage,
    defaultQuery: defaults.query,
    query: params.get("query") || undefined,
    variables: params.get("variables") || defaults.variables,
    defaultHeaders: defaults.headers,
    plugins: [GraphiQLPluginExplorer.explorerPlugin()],
    defaultEditorToolsVisibility: "headers",
    isHeadersEditorEnabled: true,
    inputValueDeprecation: true,
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(SegmentqlGraphiQL));
