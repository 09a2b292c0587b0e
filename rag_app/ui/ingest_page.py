"""The Ingest page: upload files or name a server folder, watch the progress, read the summary, manage documents.

Uploads are stored by `rag_app.services.uploads` inside `<data home>/uploads/<collection>/` (names sanitised, size
limited) and then ingested like any other file, so re-uploading a changed file updates it incrementally.
"""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from rag_app.errors import RagError
from rag_app.services.uploads import check_collection_name, save_uploads
from rag_app.ui import state
from rag_app.ui.components import collection_picker, progress_reporter


def target_collection(rag) -> str:
    """The collection picked in the sidebar, or a new one named here."""
    if switched := st.session_state.pop("collection_after_ingest", None):
        st.session_state["collection"] = switched  # a new collection was just created: pick it
        st.session_state["new_collection"] = ""
    picked = collection_picker(rag)
    new = st.text_input("New collection (leave empty to use the one picked in the sidebar)", key="new_collection",
                        placeholder="e.g. papers (3-63 letters, digits, '.', '_' or '-')").strip()
    if new:
        check_collection_name(new)
        return new
    return picked


def run_ingest(rag, paths: list, collection: str, prune: bool = False) -> None:
    """Ingest with a progress bar; the summary is kept in the session and shown below."""
    bar = st.progress(0.0, text="Starting…")
    summary = rag.ingest(paths, collection=collection, prune=prune, progress=progress_reporter(bar))
    bar.progress(1.0, text=f"Done: {summary.files.seen} files looked at, {summary.chunks_written} chunks written")
    st.session_state["ingest_summary"] = summary
    if collection != st.session_state.get("collection"):
        st.session_state["collection_after_ingest"] = collection
        st.rerun()


def render_summary(summary, rejected: list[dict] | None = None) -> None:
    files = summary.files
    line = (f"**{summary.collection}**: {files.added} added, {files.updated} updated, {files.unchanged} unchanged, "
            f"{files.deleted} removed, {files.failed} failed, {files.skipped} skipped · "
            f"{summary.chunks_written} chunks written in {summary.seconds:.1f} s")
    problems = [{"file": f["path"], "reason": f["error"]} for f in summary.failed]
    problems += [{"file": r["name"], "reason": f"upload refused: {r['error']}"} for r in rejected or []]
    if problems:
        st.warning(line)
        st.markdown("**Failures**")
        st.table(problems)
    else:
        st.success(line)
    if summary.skipped:
        st.markdown("**Skipped** (unsupported types)")
        st.table([{"file": s["path"], "reason": s["error"]} for s in summary.skipped])


def upload_section(rag, collection: str) -> None:
    settings = rag.settings
    limit_mb = settings.ingest.max_file_mb
    generation = st.session_state.setdefault("uploader_generation", 0)
    files = st.file_uploader(f"Upload files (up to {limit_mb:g} MB each)", accept_multiple_files=True,
                             max_upload_size=max(1, math.ceil(limit_mb)), key=f"uploader_{generation}")
    if st.button("Ingest uploaded files", disabled=not files, type="primary"):
        result = save_uploads(settings, collection, [(f.name, f.getvalue()) for f in files])
        st.session_state["upload_rejected"] = result.rejected
        st.session_state["uploader_generation"] = generation + 1  # a fresh, empty uploader on the next run
        st.session_state.pop("ingest_summary", None)
        if result.saved:
            run_ingest(rag, result.saved, collection)
        st.rerun()  # the summary is kept in the session


def folder_section(rag, collection: str) -> None:
    path = st.text_input("Folder or file on the server", key="ingest_path",
                         placeholder="/path/to/documents").strip()
    prune = st.checkbox("Remove documents whose files are gone from this folder", key="ingest_prune")
    if st.button("Ingest folder"):
        if not path:
            raise RagError("type a folder or file path on the server first")
        target = Path(path).expanduser()
        if not target.exists():
            raise RagError(f"{path!r} does not exist on the server: give a folder or file path readable by the app")
        st.session_state["upload_rejected"] = []
        run_ingest(rag, [target], collection, prune=prune)


def documents_section(rag, collection: str) -> None:
    st.subheader(f"Documents in {collection}")
    documents = rag.documents(collection)
    if not documents:
        st.caption("This collection is empty: ingest something first.")
        return
    st.dataframe([{"source": d.source, "chunks": d.chunks, "ingested at": d.ingested_at, "title": d.title}
                  for d in documents], hide_index=True, width="stretch")
    by_label = {f"{d.source} ({d.chunks} chunks)": d for d in documents}
    chosen = st.multiselect("Delete documents", list(by_label), key=f"delete_{collection}")
    if st.button("Delete selected", disabled=not chosen):
        removed = sum(rag.delete_document(by_label[label].path, collection=collection) for label in chosen)
        st.session_state.pop(f"delete_{collection}", None)
        st.session_state["deleted_note"] = f"Deleted {len(chosen)} document(s), {removed} chunks."
        st.rerun()
    with st.expander("Delete the whole collection"):
        typed = st.text_input(f"Type {collection} to confirm", key=f"drop_{collection}")
        if st.button("Delete collection", type="primary", disabled=typed.strip() != collection):
            rag.drop_collection(collection)
            st.session_state.pop("collection", None)
            st.session_state["deleted_note"] = f"Deleted the collection {collection} ({len(documents)} document(s))."
            st.rerun()


def render() -> None:
    st.title("Ingest documents")
    with state.guard("Loading the collections"):
        rag = state.get_rag()
        collection = target_collection(rag)
        upload_tab, folder_tab = st.tabs(["Upload files", "Folder on the server"])
        with upload_tab, state.guard("Ingesting the uploads"):
            upload_section(rag, collection)
        with folder_tab, state.guard("Ingesting the folder"):
            folder_section(rag, collection)
        summary = st.session_state.get("ingest_summary")
        rejected = st.session_state.get("upload_rejected") or []
        if summary is not None or rejected:
            st.subheader("Last ingest")
            if summary is not None:
                render_summary(summary, rejected)
            else:
                st.warning("No file was stored.")
                st.table([{"file": r["name"], "reason": f"upload refused: {r['error']}"} for r in rejected])
        if note := st.session_state.pop("deleted_note", None):
            st.success(note)
        with state.guard("Listing the documents"):
            documents_section(rag, collection)


if __name__ == "__main__":
    render()
