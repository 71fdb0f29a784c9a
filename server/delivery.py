"""Webhook deliveries: the changes of a webhook's segments POSTed to its URL,
signed, at least once, in log order.

**State in MongoDB.** A webhook's document says where it is in its
workspace's change log (``position``) and when a dispatcher should next look
at it (``dueAt``: set when a change is logged, or to a retry's time). A
dispatcher claims a due webhook (``claimOwner`` until ``claimUntil``), so one
process at a time delivers it, in order. A delivery is a document too, made
before it is first sent: its changes (at most BATCH, the next ones after
``position``), its state (PENDING, SUCCEEDED, FAILED, CANCELED) and its
attempts. A service killed at any point leaves a PENDING delivery and a
claim that lapses: the next dispatcher (of this process restarted, or of
another) sends the same delivery again, with the same ``deliveryId`` and
change cursors, so receivers can drop what they already have.

**Retries.** A timeout, a refused connection or an answer other than 2xx is
retried after SEGMENTQL_WEBHOOK_FIRST_RETRY_MS, doubling each time up to an
hour, each delay shortened by a random part of up to half (jitter: receivers
coming back are not hit by every service at once). Later changes wait: a
webhook's deliveries keep log order. Once a delivery has failed for
SEGMENTQL_WEBHOOK_RETRY_FOR_SECONDS (a day), it is FAILED and so is the
webhook; ``redeliverWebhook`` resumes it.

**Bounded.** At most MAX_IN_FLIGHT deliveries per process and
MAX_PER_WORKSPACE per workspace are sent at once; each waits at most
SEGMENTQL_WEBHOOK_TIMEOUT_SECONDS for its answer, of which only
MAX_ANSWER_BYTES are read; a delivery keeps its newest KEPT_ATTEMPTS
attempts. A receiver that is slow, or answers 500 forever, costs a slot and
a small, fixed amount of memory and storage. Redirects are not followed
(the answer is a failure), and each attempt connects to an address checked
then (``webhook_targets``).

**Signatures.** ``Segmentql-Signature: t=<unix seconds>,v1=<hex>``, the hex
HMAC-SHA256, keyed with the webhook's secret, of ``"<t>.<body>"``; during a
secret's rotation a second ``v1`` is signed with the previous secret.
"""

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx
from pymongo.errors import PyMongoError

from . import metrics
from .cursors import change_cursor
from .database import Database, now
from .errors import BadArgument
from .instants import rfc3339
from .webhook_targets import resolved_target
from .webhooks import WebhookStatus

log = logging.getLogger("segmentql")

BATCH = 100
MAX_IN_FLIGHT = 8
MAX_PER_WORKSPACE = 2
MAX_ANSWER_BYTES = 1024
LOOKUPS = 2  # DNS lookups at once per process
TURN = 10  # deliveries a webhook makes before it goes back in line
KEPT_ATTEMPTS = 25
MAX_RETRY_DELAY = dt.timedelta(hours=1)
POLL_SECONDS = 0.5
USER_AGENT = "segmentql-webhooks"


@dataclass(frozen=True)
class DeliverySettings:
    timeout_seconds: float
    first_retry: dt.timedelta
    retry_for: dt.timedelta
    allow_private: bool
    # How long a claim outlives its dispatcher's last sign of life (beyond an attempt's timeout).
    claim_seconds: float


def signature(secrets: Sequence[str], body: bytes, at: int) -> str:
    """The ``Segmentql-Signature`` header of ``body`` sent at unix time ``at``."""
    signed = f"{at}.".encode() + body
    return ",".join([f"t={at}", *(f"v1={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}"
                                  for s in secrets)])


def change_payload(change: Mapping) -> dict:
    """A logged change as receivers get it (the fields of a subscription's event)."""
    return {"cursor": change_cursor(change["seq"]), "segmentId": change["segment_id"],
            "contactId": change["contact_id"], "change": change["change"], "cause": change["cause"],
            "at": rfc3339(change["at"])}


def retry_delay(settings: DeliverySettings, attempts: int) -> dt.timedelta:
    """The wait before attempt ``attempts + 1``: exponential, capped, with jitter."""
    full = min(settings.first_retry * 2 ** min(attempts - 1, 30), MAX_RETRY_DELAY)
    return full * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    """Delivers the due webhooks of every workspace, from one service process."""

    def __init__(self, db: Database, settings: DeliverySettings):
        self.db, self.settings = db, settings
        self.owner = uuid.uuid4().hex
        self._nudged = asyncio.Event()
        self._lookups = asyncio.Semaphore(LOOKUPS)
        self._in_flight: dict[tuple[str, str], asyncio.Task] = {}
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=settings.timeout_seconds,
            # No connection is kept for another delivery: connections are to
            # pinned addresses, and one made for (and checked against) one
            # host name must not carry another's request.
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT})

    def nudge(self, _workspace_id: str = "") -> None:
        """Look for due webhooks now (a change was logged in this process)."""
        self._nudged.set()

    async def run(self) -> None:
        """Deliver due webhooks for as long as the service runs."""
        try:
            while True:
                self._nudged.clear()
                try:
                    await self._start_due()
                except PyMongoError as exc:
                    log.warning("webhook deliveries wait for the database: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), POLL_SECONDS)
        finally:
            for task in self._in_flight.values():
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
            await self._client.aclose()

    async def _start_due(self) -> None:
        free = MAX_IN_FLIGHT - len(self._in_flight)
        if free <= 0:
            return
        busy = collections.Counter(workspace_id for workspace_id, _ in self._in_flight)
        full = {workspace_id for workspace_id, n in busy.items() if n >= MAX_PER_WORKSPACE}
        # Workspaces with all their slots taken are left out of the query, so
        # their other due webhooks cannot crowd out everyone else's.
        for webhook in await self.db.due_webhooks(now(), MAX_IN_FLIGHT * 4, but=full):
            key = (webhook["workspace_id"], webhook["id"])
            if key in self._in_flight or busy[key[0]] >= MAX_PER_WORKSPACE:
                continue
            claimed = await self.db.claim_webhook(*key, self.owner, self._claim_until(), now())
            if claimed is None:
                continue
            task = asyncio.create_task(self._serve(claimed))
            self._in_flight[key] = task
            task.add_done_callback(functools.partial(self._finished, key))
            busy[key[0]] += 1
            free -= 1
            if free == 0:
                return

    def _finished(self, key: tuple[str, str], _task: asyncio.Task) -> None:
        self._in_flight.pop(key, None)
        self._nudged.set()  # a slot is free

    def _claim_until(self) -> dt.datetime:
        return now() + dt.timedelta(seconds=self.settings.timeout_seconds + self.settings.claim_seconds)

    async def _serve(self, webhook: dict) -> None:
        """Deliver a claimed webhook's due deliveries one after another, then
        give it up; after TURN deliveries it goes back in line (due now), so
        a webhook with much to send takes turns with the others."""
        claimed: dict | None = webhook
        try:
            for _ in range(TURN):
                if claimed is None or not await self._step(claimed):
                    return
                webhook = claimed
                claimed = await self.db.claim_webhook(webhook["workspace_id"], webhook["id"], self.owner,
                                                      self._claim_until(), now())
            if claimed is not None:
                await self._release(claimed, {"dueAt": now()})
        except asyncio.CancelledError:  # the service stops: another may take the webhook up at once
            with contextlib.suppress(PyMongoError):
                await asyncio.shield(self._release(webhook, {"dueAt": now()}))
            raise
        except PyMongoError as exc:  # the claim lapses; a dispatcher takes it up again
            log.warning("webhook %s: delivery interrupted by the database: %s", webhook["id"], exc)
        except Exception:
            log.exception("webhook %s: delivery failed unexpectedly", webhook["id"])

    async def _step(self, webhook: dict) -> bool:
        """Make or resume the webhook's next delivery and attempt it if due;
        whether to go on at once (it was delivered)."""
        workspace_id, webhook_id, generation = webhook["workspace_id"], webhook["id"], webhook["generation"]
        delivery = await self.db.pending_delivery(workspace_id, webhook_id, generation)
        if delivery is None:
            delivery = await self._next_delivery(webhook)
            if delivery is None:
                return False
        if delivery["state"] == "SUCCEEDED":  # its dispatcher stopped before moving the webhook on
            await self.db.advance_webhook(workspace_id, webhook_id, self.owner, generation, delivery["toSeq"])
            return True
        if delivery["state"] != "PENDING":  # FAILED, its dispatcher stopped before failing the webhook
            await self._release(webhook, {"status": WebhookStatus.FAILED.name, "dueAt": None})
            return False
        if delivery["nextAttemptAt"] > now():
            await self._release(webhook, {"dueAt": delivery["nextAttemptAt"]})
            return False
        outcome = await self._attempt(webhook, delivery)
        stamp = now()
        attempt = {"at": stamp, "statusCode": outcome.status_code, "error": outcome.error,
                   "durationMs": outcome.duration_ms}
        # The webhook is moved on before the delivery is marked finished: a
        # stop in between sends the delivery again, never skips it.
        if outcome.delivered:
            await self.db.advance_webhook(workspace_id, webhook_id, self.owner, generation, delivery["toSeq"])
            await self.db.record_attempt(workspace_id, delivery["id"], attempt,
                                         {"state": "SUCCEEDED", "finishedAt": stamp, "nextAttemptAt": None},
                                         KEPT_ATTEMPTS)
            return True
        if stamp - delivery["createdAt"] >= self.settings.retry_for:
            await self._release(webhook, {"status": WebhookStatus.FAILED.name, "dueAt": None})
            await self.db.record_attempt(workspace_id, delivery["id"], attempt,
                                         {"state": "FAILED", "finishedAt": stamp, "nextAttemptAt": None},
                                         KEPT_ATTEMPTS)
            log.warning("webhook %s of workspace %s failed: delivery %s was refused for %s", webhook_id,
                        workspace_id, delivery["id"], self.settings.retry_for)
            return False
        retry_at = stamp + retry_delay(self.settings, delivery.get("attemptCount", 0) + 1)
        await self.db.record_attempt(workspace_id, delivery["id"], attempt, {"nextAttemptAt": retry_at},
                                     KEPT_ATTEMPTS)
        await self._release(webhook, {"dueAt": retry_at})
        return False

    async def _next_delivery(self, webhook: dict) -> dict | None:
        """The delivery of the changes after the webhook's position, stored
        before it is sent; None (and the webhook idle) when there are none."""
        workspace_id, position = webhook["workspace_id"], webhook["position"]
        settled = await self.db.settled_seq(workspace_id)
        changes = await self.db.changes_page(workspace_id, webhook["segmentIds"], position, BATCH, settled)
        if not changes:
            await self._release(webhook, {"dueAt": None, "position": max(position, settled)})
            # A change settled after the read above found the webhook claimed
            # (not idle): look again, so it is not left waiting.
            if await self.db.settled_seq(workspace_id) > settled:
                await self.db.update_webhook(workspace_id, webhook["id"], {"$set": {"dueAt": now()}})
            return None
        generation, first = webhook["generation"], changes[0]["seq"]
        # A full batch ends with its last change; a shorter one holds every
        # change of the webhook's segments up to the settled position.
        last = changes[-1]["seq"] if len(changes) == BATCH else settled
        payloads, stamp = [change_payload(c) for c in changes], now()
        return await self.db.insert_delivery({
            "workspace_id": workspace_id, "webhook_id": webhook["id"], "id": f"{webhook['id']}-{generation}-{first}",
            "generation": generation, "fromSeq": first, "toSeq": last, "changes": payloads,
            "changeCount": len(payloads), "firstCursor": payloads[0]["cursor"], "lastCursor": payloads[-1]["cursor"],
            "state": "PENDING", "attempts": [], "attemptCount": 0, "createdAt": stamp, "nextAttemptAt": stamp,
            "finishedAt": None})

    async def _resolved(self, url: str):
        """The URL's checked target (``webhook_targets``). Lookups run in the
        loop's thread pool, which a resolver that never answers could fill:
        at most LOOKUPS run at once, each counted until its thread is done,
        even when the attempt gave up waiting for it."""
        await self._lookups.acquire()
        lookup = asyncio.ensure_future(resolved_target(url, self.settings.allow_private))
        lookup.add_done_callback(self._looked_up)
        return await asyncio.shield(lookup)

    def _looked_up(self, lookup: asyncio.Future) -> None:
        self._lookups.release()
        if not lookup.cancelled():
            lookup.exception()  # retrieved (an abandoned lookup's refusal is nobody's to tell)

    async def _release(self, webhook: dict, changes: dict) -> None:
        await self.db.release_webhook(webhook["workspace_id"], webhook["id"], self.owner, webhook["generation"],
                                      changes)

    async def _attempt(self, webhook: dict, delivery: dict) -> Outcome:
        """POST the delivery once; what came of it."""
        body = json.dumps({"webhookId": webhook["id"], "deliveryId": delivery["id"], "changes": delivery["changes"]},
                          separators=(",", ":")).encode()
        secrets = [webhook["secret"]]
        if webhook.get("previousSecret") and webhook.get("previousSecretUntil", now()) > now():
            secrets.append(webhook["previousSecret"])
        started = time.monotonic()

        def outcome(status_code: int | None, error: str | None) -> Outcome:
            seconds = time.monotonic() - started
            done = Outcome(status_code, error, round(seconds * 1000))
            metrics.webhook_attempt(done.delivered, seconds)
            return done
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                target = await self._resolved(webhook["url"])
            headers = {"Content-Type": "application/json", "Host": target.host_header,
                       "Segmentql-Signature": signature(secrets, body, int(time.time())),
                       "Segmentql-Delivery": delivery["id"]}
            extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
            request = self._client.build_request("POST", target.url, content=body, headers=headers,
                                                 extensions=extensions)
            # httpx's timeout bounds each read; this bounds the whole answer (a
            # receiver trickling a byte at a time must not hold a slot).
            async with asyncio.timeout(self.settings.timeout_seconds):
                response = await self._client.send(request, stream=True)
                try:
                    answer = await _first_bytes(response, MAX_ANSWER_BYTES)
                finally:
                    await response.aclose()
        except BadArgument as refused:
            return outcome(None, str(refused))
        except (httpx.TimeoutException, TimeoutError):
            return outcome(None, f"no answer within {self.settings.timeout_seconds} s")
        except httpx.HTTPError as exc:
            return outcome(None, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            return outcome(response.status_code, None)
        if response.is_redirect:
            return outcome(response.status_code, "redirects are not followed: register the final URL")
        return outcome(response.status_code, answer.decode("utf-8", "replace")[:300] or None)


async def _first_bytes(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the answer's body (the rest is not read)."""
    read = b""
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) >= limit:
            break
    return read[:limit]
