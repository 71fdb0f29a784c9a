"""The service: settings, embedded database, database access, compiler,
ingestion, the HTTP app and the command line."""
