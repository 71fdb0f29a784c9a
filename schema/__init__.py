"""The GraphQL schema: types, the ``RuleInput`` assembled from the condition
registry, and thin resolvers over ``segmentql.server``."""

from .build import build_schema

__all__ = ["build_schema"]
