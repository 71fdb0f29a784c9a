"""The hook specification: what a condition plugin implements.

segmentql has one hook. A plugin is any module or object with a function
named like the hook and marked with :data:`hookimpl`; built-in conditions are
plugins of exactly this kind (``segmentql/plugins/conditions/*.py``), and a
third-party package is found through the entry-point group
``segmentql.conditions``::

    [project.entry-points."segmentql.conditions"]
    email_domain = "segmentql_email_domain"

Everything a plugin author needs is importable from ``segmentql.plugins``.
"""

import pluggy

from .api import Register

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
