"""The one user-facing error type.

Faces turn a `RagError` into a one-line message (CLI: exit code 2; Streamlit: `st.error`).
Anything else escaping is a bug and keeps its traceback.
"""


class RagError(Exception):
    """An error meant for the user: the message says what went wrong and how to fix it."""


class StoreUnavailableError(RagError):
    """The vector store (usually a Chroma server) could not be reached."""


class EmbedderMismatchError(RagError):
    """A collection was built with a different embedder than the one configured."""


class StoreLockedError(RagError):
    """Another process holds the single-writer lock of an embedded store."""


class IngestStoppedError(RagError):
    """The store or the embedder failed mid-ingest (a full disk, a lost server): the run stopped; finished files are
    stored. The original error is the `__cause__`."""
