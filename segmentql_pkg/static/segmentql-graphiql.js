// segmentql's GraphiQL. Every asset is served by segmentql itself: the page works offline,
// and its Content-Security-Policy allows scripts, styles and requests from segmentql only.
//
// A link may prefill the editors (`?query=...&variables=...`), never the headers: a link
// carrying `headers=` could make the page send a key of the link author's choosing (the
// user's work landing in the author's workspace). Headers are kept in this browser only
// when the user turns that on in GraphiQL's settings (off by default).
const params = new URLSearchParams(window.location.search);
const defaults = JSON.parse(document.getElementById("default-document").textContent);
const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });

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
