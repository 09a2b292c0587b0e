"""The Streamlit face: pages (chat, ingest, demos), shared components and the per-process state."""
