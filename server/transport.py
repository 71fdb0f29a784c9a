"""The GraphQL-over-HTTP envelope: what a request must be before strawberry reads it.

Left to itself, strawberry answers a JSON body that is not an object
(``"x"``, ``null``, ``123``) and one it cannot decode (invalid UTF-8, an
integer of more digits than Python converts, ``sys.get_int_max_str_digits``)
with a 500, reads numbers JSON does not have (``NaN``, ``Infinity``, ``1e999``
as infinity), and answers other envelope mistakes (no ``query``,
``variables`` that are not an object, a batch, an unknown ``operationName``,
a mutation sent by GET) with a ``text/plain`` 400. Given several operations
and no ``operationName`` it runs the first one, a mutation too, where GraphQL
requires an error.

So the gate (``app.Gate``) checks every request's envelope first, and each
refusal is a JSON error with a code, like every other transport error: 400
``BAD_REQUEST``, or 405 ``METHOD_NOT_ALLOWED`` for a mutation sent by GET.
Strawberry then only ever sees a request it can run or answer with GraphQL
errors (a document that does not parse is one: that answer is strawberry's).
The check parses the document through strawberry's own parser cache, so the
document is parsed once; the body is decoded twice (by the check and by
strawberry), which costs milliseconds at the body size limit.

A persisted query sent by its hash (``segmentql.persisted``) gets its stored
document as ``query`` before the check, so it is checked, and runs, as if it
had been sent in full.
"""

import json
import math
import sys
from collections.abc import Callable, Mapping
from functools import partial

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, OperationType
from strawberry.extensions.parser_cache import _get_parse_cache

from .compiler import RuleLimits
from .errors import BadRequest, MethodNotAllowed

Parse = Callable[[str], DocumentNode]
# The document a request runs, from its ``query`` and ``extensions``: the
# ``query`` sent, or a persisted query's (``segmentql.persisted``).
Document = Callable[[object, object], object]


def cached_parser(cache_size: int, max_tokens: int) -> Parse:
    """GraphQL's parser through the cache strawberry's ``ParserCache(maxsize=cache_size)``
    and ``MaxTokensLimiter(max_tokens)`` use (one per size, shared by every request,
    keyed by the document and its options), so a document the envelope check parsed
    is not parsed again when it runs."""
    return partial(_get_parse_cache(cache_size), max_tokens=max_tokens)


def _not_json(constant: str):
    raise BadRequest(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise BadRequest(f"the number {text[:40]} is too large for a double")
    return number


def decode(data: bytes | str, what: str) -> object:
    """``data`` as JSON, or BadRequest naming ``what`` ("the request body").
    Python's decoder also reads ``NaN`` and ``Infinity``, and ``1e999`` as
    infinity, none of which JSON has: they are refused."""
    try:
        return json.loads(data, parse_constant=_not_json, parse_float=_finite)
    except BadRequest as bad:
        raise BadRequest(f"{what} is not JSON: {bad}") from None
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not JSON: {exc.msg} at character {exc.pos}") from None
    except ValueError:  # the only other ValueError of json.loads: an integer longer than Python converts
        raise BadRequest(f"{what} holds a number of more than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:  # the decoder recurses once per level of nesting
        raise BadRequest(f"{what} is nested too deeply to read; a rule may be nested at most "
                         f"{RuleLimits.max_depth} levels deep") from None


def check_body(body: bytes, parse: Parse, document: Document) -> bytes:
    """A POST's body: one JSON object with the request's parts (below). Returns
    the body strawberry reads: ``body``, or, for a persisted query sent by its
    hash, ``body`` with the stored document as ``query``."""
    data = decode(body, "the request body")
    if isinstance(data, list):
        raise BadRequest("send one GraphQL request per HTTP request (batching is off)")
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object with the GraphQL document in `query`")
    for name in ("variables", "extensions"):
        if not isinstance(data.get(name), (dict, type(None))):
            raise BadRequest(f"`{name}` must be a JSON object or null")
    query = document(data.get("query"), data.get("extensions"))
    if query is not data.get("query"):
        data["query"] = query
        body = json.dumps(data).encode()
    _check_parts(data, "POST", parse)
    return body


def check_query_params(params: Mapping[str, str], parse: Parse, document: Document) -> dict[str, str]:
    """A GET's query string: ``query``, and ``variables`` and ``extensions`` as
    JSON objects. Returns the parameters strawberry reads: ``params``, with the
    stored document as ``query`` for a persisted query sent by its hash."""
    parts = {}
    for name in ("variables", "extensions"):
        parts[name] = decode(params[name], f"`{name}`") if params.get(name) else None
        if not isinstance(parts[name], (dict, type(None))):
            raise BadRequest(f"`{name}` must be a JSON object or null")
    checked = dict(params)
    query = document(params.get("query"), parts["extensions"])
    if isinstance(query, str):
        checked["query"] = query
    _check_parts(checked, "GET", parse)
    return checked


def _check_parts(data: Mapping, method: str, parse: Parse) -> None:
    query, operation_name = data.get("query"), data.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("send the GraphQL document as a non-empty string in `query`")
    if not isinstance(operation_name, (str, type(None))):
        raise BadRequest("`operationName` must be a string or null")
    try:
        document = parse(query)
    except (GraphQLError, RecursionError):
        return  # strawberry answers with the parser's error, as GraphQL errors
    _check_operation(document, operation_name, method)


def _check_operation(document: DocumentNode, operation_name: str | None, method: str) -> None:
    """The operation to run is certain: named, or the only one (GraphQL's rule,
    which strawberry does not keep: it would run the first); and by GET only a query."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if not operations:
            raise BadRequest("the document holds no operation to run")
        if len(operations) > 1:
            names = [o.name.value if o.name else "(anonymous)" for o in operations]
            listed = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
            raise BadRequest(f"the document holds {len(operations)} operations ({listed}); name the one to run in "
                             f"`operationName`")
        selected = operations[0]
    else:
        named = [o for o in operations if o.name and o.name.value == operation_name]
        if not named:
            raise BadRequest(f"the document has no operation named {operation_name[:100]!r}")
        selected = named[0]
    if method == "GET" and selected.operation != OperationType.QUERY:
        raise MethodNotAllowed(f"a {selected.operation.value} must be sent with POST; GET runs queries only")
