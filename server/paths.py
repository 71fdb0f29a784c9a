"""Changes to a stored document as dotted paths (``email``, ``custom.plan``).

Contact writes send only the paths an input gives (``$set``, and ``$unset``
for removed custom values), never whole documents read earlier: two writers
changing different fields of one contact then both keep their change. These
helpers merge several changes to one document (a batch may name a contact
twice) and apply a change to a plain dict (to build a new document, or to
tell whether a change changes anything).
"""

from collections.abc import Mapping


class _Unset:
    """The value of a path a change removes."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()
Change = dict[str, object]  # path -> value, or UNSET


def _split(path: str) -> list[str]:
    return path.split(".")


def overlaps(a: str, b: str) -> bool:
    """Whether writing one path touches the other (equal, or one inside the other):
    MongoDB refuses an update naming both."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def apply(doc: Mapping, change: Mapping[str, object]) -> dict:
    """A copy of ``doc`` with ``change`` applied (nested dicts copied where written)."""
    result = dict(doc)
    for path, value in change.items():
        *parents, leaf = _split(path)
        target = result
        for name in parents:
            child = target.get(name)
            target[name] = child = dict(child) if isinstance(child, Mapping) else {}
            target = child
        if value is UNSET:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return result


def merge(first: Change, then: Change) -> Change:
    """One change with the effect of ``first`` followed by ``then``, whose paths
    never overlap (so it is a valid single update)."""
    merged = dict(first)
    for path, value in then.items():
        for earlier in [p for p in merged if p == path or p.startswith(path + ".")]:
            del merged[earlier]
        ancestor = next((p for p in merged if path.startswith(p + ".")), None)
        if ancestor is None:
            merged[path] = value
            continue
        base = merged[ancestor]
        if base is UNSET:
            base = {}
        rest = path[len(ancestor) + 1:]
        merged[ancestor] = apply(base if isinstance(base, Mapping) else {}, {rest: value})
    return merged


def update_document(change: Mapping[str, object]) -> dict:
    """The ``$set`` / ``$unset`` update of a change."""
    update: dict = {}
    sets = {p: v for p, v in change.items() if v is not UNSET}
    unsets = {p: "" for p, v in change.items() if v is UNSET}
    if sets:
        update["$set"] = sets
    if unsets:
        update["$unset"] = unsets
    return update
