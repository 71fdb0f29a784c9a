"""segmentql: which contacts are in a segment, and how many, fast.

The code is in layers, each importing only those below it (docs/architecture.md;
``make imports`` checks it): ``segmentql.plugins`` (the hook specification, the
plugin API, the contact contract, the registry and the built-in conditions),
``segmentql.server`` (domain and storage: database, compiler, segments,
ingestion), ``segmentql.schema`` (the GraphQL schema), and on top the HTTP app
(``segmentql.app``, with the GraphiQL page ``segmentql.graphiql``) and the
command line (``segmentql.cli``). The three middle packages are the top-level
folders of the repository, installed as sub-packages of this one.
"""

__version__ = "0.1.0"
