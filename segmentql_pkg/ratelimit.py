"""Requests per API key: a token bucket per key, so one key cannot take the
whole service from the others.

A key's bucket holds up to ``burst`` tokens (twice the rate: a front end may
send a page's worth of requests at once) and refills at ``rate`` tokens a
second; each authenticated request (GraphQL, member exports) takes one. With
none left the request is refused before anything runs: HTTP 429,
``RATE_LIMITED``, with ``Retry-After`` (whole seconds until a token is back).

Every answer to an authenticated request says where its key stands, in the
headers of the IETF draft (draft-ietf-httpapi-ratelimit-headers-09)::

    RateLimit-Policy: "default";q=100;w=2    (100 requests per 2 s window: the burst, refilled at the rate)
    RateLimit: "default";r=57;t=1            (57 requests left; t: seconds until the bucket is full again)

Buckets are per process (several service processes each allow the rate: the
limit stops a runaway client, it is not an exact quota) and keyed by the
key's SHA-256, as the database stores it, so no key is held in memory. Memory
is bounded: a bucket untouched for ``burst / rate`` seconds is full, the same
as no bucket, so the least recently used are dropped once idle, and at most
``max_keys`` are kept whatever happens (a key whose bucket was dropped early
gets a fresh burst: the limit errs towards the client).
"""

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import Message, Send

from segmentql.server import metrics
from segmentql.server.database import hash_key
from segmentql.server.errors import RateLimited

from .auth import bearer, refusal

MAX_KEYS = 10_000
POLICY = "default"
BURST_SECONDS = 2  # the burst: this many seconds' worth of requests


@dataclass(frozen=True)
class Verdict:
    """One request's turn: whether it may run and where its key then stands."""

    allowed: bool
    remaining: int  # whole requests left
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until the next request may run (0 if one may now)


class RateLimiter:
    def __init__(self, rate: int, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.max_keys, self.clock = rate, BURST_SECONDS * rate, max_keys, clock
        # key hash -> (tokens, when counted), least recently used first.
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> Verdict:
        """Take one token of ``key``'s bucket, if there is one."""
        now = self.clock()
        self._forget_idle(now)
        digest = hash_key(key)
        tokens, counted = self._buckets.pop(digest, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - counted) * self.rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[digest] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return Verdict(allowed, math.floor(tokens), math.ceil((self.burst - tokens) / self.rate),
                       0 if allowed else math.ceil((1 - tokens) / self.rate))

    def _forget_idle(self, now: float) -> None:
        while self._buckets:
            tokens, counted = next(iter(self._buckets.values()))
            if tokens + (now - counted) * self.rate < self.burst:
                return
            self._buckets.popitem(last=False)

    def headers(self, verdict: Verdict) -> dict[str, str]:
        headers = {"RateLimit-Policy": f'"{POLICY}";q={self.burst};w={BURST_SECONDS}',
                   "RateLimit": f'"{POLICY}";r={verdict.remaining};t={verdict.reset}'}
        if not verdict.allowed:
            headers["Retry-After"] = str(verdict.retry_after)
        return headers

    def admit(self, headers: Headers) -> Response | dict[str, str]:
        """For an authenticated request: its 429 refusal, or the headers its answer carries
        (none when there is no limit)."""
        key = bearer(headers.get("authorization"))
        if not self.enabled or key is None:
            return {}
        verdict = self.take(key)
        if verdict.allowed:
            return self.headers(verdict)
        metrics.RATE_LIMITED.inc()
        return refusal(429, RateLimited.code, f"this API key may send {self.rate} requests a second (bursts of "
                       f"{self.burst}); retry in {verdict.retry_after} s", self.headers(verdict))

    def gate(self, scope, send: Send) -> tuple[Response | None, Send]:
        """:meth:`admit` for an ASGI request: the refusal, or None and a ``send``
        putting the headers on the answer."""
        admitted = self.admit(Headers(scope=scope))
        if isinstance(admitted, Response):
            return admitted, send
        if not admitted:
            return None, send

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message).update(admitted)
            await send(message)
        return None, with_headers
