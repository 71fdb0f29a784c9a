"""What an operator sees of the service: logs, request ids and metrics.

- **Logs** are configured here and nowhere else (:func:`configure_logging`,
  called by ``segmentql serve`` and by ``create_app``, so an ASGI server
  running the factory gets them too): one handler on the root logger, for
  segmentql's loggers and uvicorn's, as text or as one JSON object per line
  (``SEGMENTQL_LOG_FORMAT``). Every line carries the request id of the
  request it is about (``-`` outside requests).
- **Request ids**: :class:`RequestIds` takes a client's ``X-Request-ID`` (1 to
  128 of ``A-Z a-z 0-9 . _ -``; anything else is replaced, as it would end up
  in logs) or makes one, returns it on every answer and keeps it in a context
  variable for the log lines of that request.
- **Metrics** (``server/metrics.py``) are served at ``/metrics`` in
  Prometheus' text format; :class:`RequestMetrics` counts and times GraphQL
  operations by type and outcome.
"""

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from segmentql.schema.errors import classify, operation_errors
from segmentql.server import metrics

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Loggers whose lines go through the one handler: ours, and uvicorn's (which
# otherwise configures its own, in its own format).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# The attributes every LogRecord has: anything else was given as ``extra`` and
# goes into a JSON line as it is.
# uvicorn's ``color_message`` repeats the message with terminal colours.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIds:
    """ASGI middleware: the request's id, from ``X-Request-ID`` or new, on its answer and in its log lines."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        rid = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)
        token = request_id.set(rid)
        try:
            await self.app(scope, receive, with_id)
        finally:
            request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Gives every record the id of the request it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class WithoutQueryString(logging.Filter):
    """uvicorn's access lines without the URL's query string: a GET's
    ``variables`` (rule values, emails) and a persisted query's document
    stay out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            record.args = (*record.args[:2], record.args[2].partition("?")[0], *record.args[3:])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, a
    traceback as ``exception``, and whatever the call gave as ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                "request_id": getattr(record, "request_id", "-")}
        line.update({k: v for k, v in vars(record).items() if k not in RECORD_ATTRIBUTES and k not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _StandardError(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a line is written (a test's
    capture, a redirected stream), not as it was when logging was configured."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(log_format: str) -> None:
    """Logs of this process as ``log_format`` (text or json); calling it again replaces the handler it made."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StandardError)]:
        root.removeHandler(handler)
    handler = _StandardError()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    logging.getLogger("segmentql").setLevel(logging.INFO)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, WithoutQueryString) for f in access.filters):
        access.addFilter(WithoutQueryString())
    # strawberry logs every error of a request, user errors included, with its
    # traceback; schema/errors.py logs each once, with its code.
    logging.getLogger("strawberry.execution").disabled = True


async def metrics_page(_request: Request) -> Response:
    """``/metrics``: this process's metrics, in Prometheus' text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics(SchemaExtension):
    """Counts every GraphQL operation by type and outcome (``ok``, or its first
    error's code) and times queries and mutations (a subscription lasts as
    long as its client wants)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except RuntimeError:  # a document that could not be read
            kind = "unknown"
        errors = operation_errors(context)
        outcome = classify(errors[0])[0]["code"] if errors else "ok"
        metrics.REQUESTS.labels(kind, outcome).inc()
        if kind != OperationType.SUBSCRIPTION.value:
            metrics.REQUEST_SECONDS.labels(kind).observe(time.perf_counter() - started)
