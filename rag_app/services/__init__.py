"""Services: ingest (in the top-level `ingest` package), retrieve and answer. They take components, typed by what
they use of them (`protocols.py`); no UI here."""
