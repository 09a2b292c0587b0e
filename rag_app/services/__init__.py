"""Services: ingest (in the top-level `ingest` package), retrieve and answer. They take components; no UI here."""
