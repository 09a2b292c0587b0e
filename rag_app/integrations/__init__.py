"""Faces for other frameworks: thin adapters over the same services (`langchain`: retriever, runnable, embeddings)."""
