"""segmentql: which contacts are in a segment, and how many, fast.

The code lives in three top-level folders of the repository, installed as
sub-packages of this one: ``segmentql.server`` (service, database, compiler,
ingestion, CLI), ``segmentql.plugins`` (the hook specification and the built-in
conditions) and ``segmentql.schema`` (the GraphQL schema).
"""

__version__ = "0.1.0"
