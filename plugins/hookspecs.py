"""The hook specification: what a condition plugin implements.

A plugin is any module or object with functions named like the hooks (those
it needs) and marked with :data:`hookimpl`; built-in conditions are plugins
of exactly this kind (``segmentql/plugins/conditions/*.py``), and a
third-party package is found through the entry-point group
``segmentql.conditions``::

    [project.entry-points."segmentql.conditions"]
    email_domain = "segmentql_email_domain"

Everything a plugin author needs is importable from ``segmentql.plugins``.

A plugin declares the plugin API it was written against with a module
attribute, ``SEGMENTQL_API_VERSION = "1.0"`` ("1.0 or a later 1.x"); one
needing a version this segmentql lacks (``segmentql.plugins.API_VERSION``) is
refused at start-up, as is a malformed declaration (see :mod:`.version`).
"""

from collections.abc import Callable

import pluggy

from .api import Register
from .storage import Collection, Index, Rollup

PROJECT_NAME = "segmentql"
ENTRY_POINT_GROUP = "segmentql.conditions"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def segmentql_register_conditions(register: Register) -> None:
    """Contribute rule conditions by calling ``register(Condition(...))``, once
    per ``RuleInput`` field the plugin provides.

    **When it is called:** once per process, at start-up, while the condition
    registry is assembled and before the GraphQL schema is built (so before any
    request is served). ``segmentql plugins`` calls it too, to list what each
    plugin provides.

    **What it receives:** ``register``, a callable that takes one
    :class:`~segmentql.plugins.Condition`. The registry checks each
    contribution as it is made and records which plugin made it: a field
    already claimed by another plugin, one of the reserved names ``all``,
    ``any`` and ``not``, a name that is not a GraphQL name, an ``input_type``
    that is not a strawberry input class, a ``validate`` or ``compile`` that
    is not callable, or an empty ``description`` stops start-up with an error
    that names the plugin (and, for a clash, both plugins). So does an
    exception raised by the hook itself.

    **What it returns:** nothing; a return value is ignored.

    **How its contributions are used afterwards,** for every rule a request
    sends (see :class:`~segmentql.plugins.Condition`):

    1. ``validate(node, ctx)`` is called with the condition's part of the rule
       (a dict in the GraphQL input's JSON shape) before anything runs; it
       raises :class:`~segmentql.plugins.RuleError` with a reason, and the
       service answers ``INVALID_RULE`` naming the node's path.
    2. ``compile(node, ctx)`` returns a MongoDB query document deciding
       membership of one contact document (it may use ``$expr``). The
       compiler combines the documents of the whole tree with
       ``$and``/``$or``/``$nor`` into one ``$match`` of one pipeline.
    """


@hookspec
def segmentql_register_collections(register: Callable[[Collection], None]) -> None:
    """Declare collections the plugin owns by calling
    ``register(Collection(name, indexes=(Index(keys), ...), description))``.

    **When it is called:** once per process, at start-up, right after
    :func:`segmentql_register_conditions` (``segmentql plugins`` too). The
    service then creates each collection and its indexes where it creates its
    own (before serving, and before any command works on the database),
    idempotently: several processes starting at once create each one once.

    **What it receives:** ``register``, a callable that takes one
    :class:`~segmentql.plugins.Collection`. A name not matching
    ``^[a-z][a-z0-9_]{0,47}$``, a name one of segmentql's own collections has,
    a collection another plugin registered (the error names both plugins),
    an index whose keys are not (field path, 1 or -1) pairs, an index of more
    than 32 keys (``workspace_id`` included), more than 16 indexes on one
    collection, or an exception raised by the hook stops start-up with an
    error that names the plugin; so does an index the database holds already
    with other options (``segmentql serve`` checks that before it starts
    serving).

    **What it returns:** nothing; a return value is ignored.

    **How the collection is used afterwards:** every document the plugin
    stores there carries ``workspace_id`` (the workspace it belongs to), and
    every index is led by ``workspace_id`` (segmentql puts it first), so one
    workspace's reads use the index without seeing another's documents. A
    condition's ``$lookup`` stage may join only collections declared here.
    """


@hookspec
def segmentql_register_indexes(register: Callable[[Index], None]) -> None:
    """Ask for indexes on contact fields by calling ``register(Index(keys))``,
    with paths ``plugins.<this plugin's name>.<field>`` (what its rollups
    keep) or ``custom.<key>`` (a custom field).

    **When it is called:** once per process, at start-up, after
    :func:`segmentql_register_collections`. The service creates the indexes
    on the contacts collection, each led by ``workspace_id``, before serving.

    **What it receives:** ``register``, a callable that takes one
    :class:`~segmentql.plugins.Index`. Other paths, a ``unique`` index (a
    contact write must never fail on a plugin's index), malformed keys, or an
    exception raised by the hook stop start-up with an error that names the
    plugin, as does an index of more than 32 keys (``workspace_id``
    included).

    **What it returns:** nothing; a return value is ignored.

    **The index budget:** MongoDB allows 64 indexes per collection, shared by
    segmentql's own contact indexes, the plugins' and the custom fields
    workspaces declare ``indexed``. Plugins may take at most 16 together;
    asking past that, or past what the contacts collection has left, stops
    start-up with an error naming the plugin. What plugins take is no longer
    available to custom fields (``defineCustomField(indexed: true)`` answers
    ``LIMIT_EXCEEDED`` when none is left). Two plugins asking for the same
    keys share one index.
    """


@hookspec
def segmentql_register_rollups(register: Callable[[Rollup], None]) -> None:
    """Keep per-contact values computed from each contact's events by calling
    ``register(Rollup(name, compute, description))``.

    **When it is called:** once per process, at start-up, after
    :func:`segmentql_register_indexes`.

    **What it receives:** ``register``, a callable that takes one
    :class:`~segmentql.plugins.Rollup`. A name not matching
    ``^[a-z][A-Za-z0-9_]{0,47}$``, a name the plugin registered already, a
    ``compute`` that is not callable, an empty ``description``, a plugin
    whose own name is not a plain field name, or an exception raised by the
    hook stops start-up with an error that names the plugin.

    **What it returns:** nothing; a return value is ignored.

    **How ``compute`` is used afterwards:** whenever segmentql recomputes a
    contact's engagement rollups (``stats``) from its events, it calls
    ``compute(events)`` with the same events: when events are recorded, when
    a contact is created or changes time zone, when a campaign it received
    changes, and for every contact by ``segmentql rebuild-rollups``.
    ``events`` is every event of that one contact, oldest first (ties by
    id), each a new dict with exactly these keys:

    - ``id`` (str), ``type`` (``"SENT"``, ``"OPEN"``, ``"CLICK"`` or
      ``"CONVERSION"``), ``at`` (a timezone-aware UTC ``datetime``);
    - ``campaignId``, ``url`` and ``device`` (``"MOBILE"``, ``"DESKTOP"``
      or ``"TABLET"``): str, or None when the event has none.

    It returns a dict of JSON values (str, int, float, bool, None, lists and
    dicts with string keys without ``.`` or a leading ``$``; aware
    ``datetime`` values too) taking at most 16 KB as BSON, or None for no
    value. The value is stored at ``plugins.<plugin name>.<rollup name>`` of
    the contact (None removes it), by the same guarded write that stores
    ``stats``, so a condition's query reads it like any contact field and a
    stale computation never overwrites a newer one. It runs in a worker
    thread, once per contact: keep it a pure function of ``events``.

    **How errors are reported:** a ``compute`` that raises, or returns
    anything else, is logged (an ERROR naming the plugin, the rollup, the
    workspace and the contact) and that rollup keeps its previous value for
    that contact; the contact's other rollups, and every other contact, are
    stored, and the request that recorded the events succeeds.
    """
