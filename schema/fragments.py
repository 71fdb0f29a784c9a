"""Fragments measured once: the document limits (``limits``) and the cost
model (``cost``) both walk a document as if every fragment spread were
written out, and a fragment bomb (each fragment spreading the next twice)
doubles that expansion per fragment. Remembering each fragment's measure
makes the walk linear in the document's size instead."""

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from graphql import DocumentNode, FragmentDefinitionNode

Measure = TypeVar("Measure")


class Fragments(Generic[Measure]):
    """One document's fragment definitions and what each measured."""

    def __init__(self, document: DocumentNode, nothing: Callable[[], Measure]):
        self.definitions = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.nothing = nothing
        self.done: dict[Hashable, Measure] = {}
        self.open: set[str] = set()

    def measure(self, name: str, key: Hashable, walk: Callable[[FragmentDefinitionNode], Measure]) -> Measure:
        """``walk(definition)`` of fragment ``name``, once per ``key``; nothing
        for an unknown or cyclic fragment (graphql-core's rules refuse it)."""
        if key in self.done:
            return self.done[key]
        definition = self.definitions.get(name)
        if definition is None or name in self.open:
            return self.nothing()
        self.open.add(name)
        self.done[key] = walk(definition)
        self.open.discard(name)
        return self.done[key]
