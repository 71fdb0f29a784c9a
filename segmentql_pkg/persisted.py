"""Automatic persisted queries (Apollo's protocol): a client sends a
document's SHA-256 instead of the document, so a front end's requests (the
same few documents again and again) stay small and fit in a GET's URL.

A request carries ``extensions.persistedQuery = {"version": 1, "sha256Hash": H}``:

- without ``query``: the document stored under ``H`` runs; an unknown ``H``
  is answered ``PERSISTED_QUERY_NOT_FOUND`` (HTTP 200, as Apollo's clients
  expect), and the client sends the request again with the document;
- with ``query``: ``H`` must be the document's SHA-256 (else
  ``BAD_REQUEST``); the document is stored and runs.

The stored document becomes the request's ``query`` before strawberry reads
it (``app.Gate``), so it passes the same envelope check, limits and cost as
a document sent in full, and a mutation stays refused over GET.

The store is in memory, one per process, least recently used forgotten first,
bounded in documents and in bytes. Nothing is shared or kept across
restarts: after a restart, or on another worker, a hash is unknown and the
client registers it again (the protocol's own recovery, one round trip).
Documents are kept per workspace, so a request can tell nothing of which
documents another workspace runs.
"""

import hashlib
import re
from collections import OrderedDict

from segmentql.server.errors import BadRequest, PersistedQueryNotFound

SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class PersistedQueries:
    """The documents registered by hash, by workspace (an LRU)."""

    def __init__(self, max_documents: int = 1000, max_bytes: int = 32 * 1024 * 1024):
        self.max_documents, self.max_bytes = max_documents, max_bytes
        self._documents: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._bytes = 0

    def query(self, workspace: str, query: object, extensions: object) -> object:
        """The document a request of ``workspace`` runs: its ``query``, or the
        one stored under ``extensions.persistedQuery``'s hash. A ``query`` that
        is no string is given back as it is: the envelope check refuses it."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            return query
        key = (workspace, _hash(persisted))
        if query is None:
            if key not in self._documents:
                raise PersistedQueryNotFound()
            self._documents.move_to_end(key)
            return self._documents[key]
        if not isinstance(query, str):
            return query
        document = query.encode("utf-8", "surrogatepass")
        if hashlib.sha256(document).hexdigest() != key[1]:
            raise BadRequest("provided sha does not match query")
        self._keep(key, query, len(document))
        return query

    def _keep(self, key: tuple[str, str], query: str, size: int) -> None:
        if size > self.max_bytes:
            return  # it runs, but is not kept: it would push out everything else
        if key in self._documents:
            self._documents.move_to_end(key)
            return
        self._documents[key] = query
        self._bytes += size
        while len(self._documents) > self.max_documents or self._bytes > self.max_bytes:
            _, forgotten = self._documents.popitem(last=False)
            self._bytes -= len(forgotten.encode("utf-8", "surrogatepass"))


def _hash(persisted: object) -> str:
    """The hash of a well-formed ``persistedQuery`` (lower case), or BadRequest."""
    if not isinstance(persisted, dict):
        raise BadRequest("`extensions.persistedQuery` must be a JSON object")
    version = persisted.get("version")
    if isinstance(version, bool) or version != 1:
        raise BadRequest("`extensions.persistedQuery.version` must be 1, the only version of the protocol")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest.lower()):
        raise BadRequest("`extensions.persistedQuery.sha256Hash` must be a SHA-256 as 64 hexadecimal digits")
    return digest.lower()
