"""The service's domain and storage: settings, the embedded database, database
access, the compiler, saved segments, ingestion and rollups. It sits above
``segmentql.plugins`` and below the GraphQL schema, so it never imports
``segmentql.schema``, the HTTP app or the command line (docs/architecture.md; the
ASGI factory ``server/app.py`` alone builds the app, importing it when called)."""
