"""Components: the embedder, the LM and the vector store, each behind a small interface.

Nothing here imports a service or a face. Heavy libraries are imported inside the functions that need them.
"""
