"""The Chat page: ask, watch the answer stream in, inspect its numbered sources.

The conversation lives in `st.session_state["chat"]`, one history per collection; follow-up questions send the
earlier turns to `RAG.stream`, which rewrites them into a standalone question.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from rag_app.ui import state
from rag_app.ui.components import TokenStream, collection_picker, field, source_cards, timings_caption

REFUSAL_NOTE = ("No passage in this collection supports an answer. Try rephrasing, raising k, or ingesting a "
                "document that covers it.")


def sidebar_settings() -> dict[str, Any]:
    """k, model, temperature and 'show retrieved chunks'; returns them (the model ones as settings overrides).

    The temperature only matters to the generative strategy (extractive decoding is greedy), so it is shown, and
    becomes an override, only there: under the default strategy, moving it would only build a new RAG.
    """
    base = state.load_settings()
    generative = base.answer.strategy == "generative"
    st.session_state.setdefault("k", base.retrieve.k)
    st.session_state.setdefault("llm_model", base.llm.model)
    st.session_state.setdefault("temperature", float(base.llm.temperature))
    st.session_state.setdefault("show_chunks", False)
    with st.sidebar:
        st.subheader("Answer settings")
        st.slider("Sources to retrieve (k)", 1, 20, key="k")
        st.text_input("Model (id or local path)", key="llm_model",
                      help="A Hugging Face model id or folder for the local backend, or the server's model name.")
        if generative:
            st.slider("Temperature", 0.0, 1.5, step=0.05, key="temperature", help="0 is greedy and reproducible.")
        st.toggle("Show retrieved chunks", key="show_chunks",
                  help="Show every retrieved chunk in full, not only the cited sources' snippets.")
        if st.button("Clear conversation", width="stretch"):
            st.session_state.get("chat", {}).pop(st.session_state.get("collection"), None)
    overrides = {}
    if st.session_state["llm_model"].strip() and st.session_state["llm_model"].strip() != base.llm.model:
        overrides["llm.model"] = st.session_state["llm_model"].strip()
    if generative and st.session_state["temperature"] != base.llm.temperature:
        overrides["llm.temperature"] = float(st.session_state["temperature"])
    return overrides


def render_answer(entry: dict, rag=None, collection: str | None = None) -> None:
    """An assistant turn from the history: the text (or the refusal), the source cards (with `rag`, a PDF source's
    card can show its page) and the timings."""
    answer = entry.get("answer")
    if answer is not None and field(answer, "refused", False):
        st.info(entry["content"] or REFUSAL_NOTE, icon=":material/search_off:")
        st.caption(REFUSAL_NOTE)
    else:
        st.markdown(entry["content"])
    if answer is None:
        return
    standalone = field(answer, "standalone_question", "")
    if standalone and standalone != field(answer, "question", standalone):
        st.caption(f"Searched for: {standalone}")
    sources = list(field(answer, "sources", []) or [])
    show_all = st.session_state.get("show_chunks", False)
    cited = [s for s in sources if field(s, "cited", True)]
    shown = sources if show_all or not cited else cited
    if shown:
        heading = f"Retrieved chunks ({len(shown)}, cited ones marked)" if show_all else f"Sources ({len(shown)})"
        st.caption(heading)
        source_cards(shown, full_text=show_all, rag=rag, collection=collection, key=entry.setdefault("id", _new_id()))
    caption = timings_caption(entry.get("timings"), field(answer, "model"))
    if caption:
        st.caption(caption)


def _new_id() -> str:
    import uuid

    return uuid.uuid4().hex[:12]


def timings_of(answer: Any) -> dict[str, Any]:
    """The answer's timings as a dict (the service gives a dataclass with `to_dict`, or a dict)."""
    timings = field(answer, "timings", None)
    if timings is None:
        return {}
    if hasattr(timings, "to_dict"):
        return dict(timings.to_dict())
    return dict(timings)


def ask(rag, collection: str, question: str, history: list[dict], k: int) -> dict:
    """Stream one answer into the page and append the turn (question, answer) to `history`, then draw its cards;
    returns the history entry for the answer.

    The turn is recorded before the cards are drawn: a click on a card's widget reruns the script at the next
    Streamlit call, and an answer recorded only after its cards would be lost to that rerun.
    """
    earlier = [{"role": e["role"], "content": e["content"]} for e in history]
    started = time.perf_counter()
    first: list[float] = []

    def timed(tokens: TokenStream):
        for piece in tokens:
            if not first:
                first.append(time.perf_counter())
            yield piece

    placeholder = st.empty()
    tokens = TokenStream(rag.stream(question, history=earlier, collection=collection, k=k))
    with placeholder.container():
        text = st.write_stream(timed(tokens))
    if not isinstance(text, str):
        text = "".join(str(t) for t in text)
    answer = tokens.answer
    total_ms = (time.perf_counter() - started) * 1000
    timings = {key: value for key, value in timings_of(answer).items() if value is not None}
    if first:
        timings.setdefault("first_token_ms", (first[0] - started) * 1000)
    timings.setdefault("total_ms", total_ms)
    entry = {"role": "assistant", "content": field(answer, "text", None) or text, "answer": answer,
             "timings": timings, "id": _new_id()}
    history.extend([{"role": "user", "content": question}, entry])
    placeholder.empty()
    with placeholder.container():
        render_answer(entry, rag, collection)
    return entry


def render() -> None:
    st.title("Chat with your documents")
    with state.guard("Loading the settings"):
        picker_slot = st.sidebar.container()  # the collection comes first in the sidebar
        overrides = sidebar_settings()
        rag = state.get_rag(overrides)
        collection = collection_picker(rag, picker_slot)
        st.caption(f"Answers come only from the collection **{collection}**, with numbered sources.")
        history = st.session_state.setdefault("chat", {}).setdefault(collection, [])
        for entry in history:
            with st.chat_message(entry["role"]):
                if entry["role"] == "user":
                    st.markdown(entry["content"])
                else:
                    render_answer(entry, rag, collection)
        if question := st.chat_input("Ask a question about your documents"):
            with st.chat_message("user"):
                st.markdown(question)
            with st.chat_message("assistant"):
                with state.guard("Answering"):
                    ask(rag, collection, question, history, st.session_state["k"])
        elif not history:
            st.info("Ask anything about the documents in this collection, e.g. *What is a variational autoencoder?*")


if __name__ == "__main__":
    render()
