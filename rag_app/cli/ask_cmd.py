"""`rag ask` and `rag chat`: grounded answers with numbered sources, streamed as they are produced."""

from __future__ import annotations

import argparse
import json
import sys

from rag_app.cli import add_store_options, settings_from_args


def register(subparsers) -> None:
    ask = subparsers.add_parser("ask", help="answer a question from your documents, with numbered sources",
                                description="Answer QUESTION from the collection, citing sources as [n]; says "
                                            "\"I don't know\" when the documents don't say.")
    ask.add_argument("question", help="the question (quote it)")
    _common(ask)
    ask.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    ask.add_argument("--no-stream", action="store_true", help="print the answer only when complete")
    ask.set_defaults(func=run_ask)

    chat = subparsers.add_parser("chat", help="interactive questions with follow-ups (reads stdin; `exit` or EOF ends)")
    _common(chat)
    chat.set_defaults(func=run_chat)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-k", type=int, help="chunks to retrieve (default: RAG_RETRIEVE__K or 6)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where the models run")
    add_store_options(parser)


def _rag(args: argparse.Namespace):
    from rag_app.api import RAG

    rag = RAG(settings_from_args(args))
    if not args.collection:
        _ensure_corpus(rag)
    return rag


def _ensure_corpus(rag) -> None:
    """First use: an empty default collection gets the bundled corpus, with a progress bar on stderr."""
    if rag.store().count() > 0:
        return
    from rag_app.cli.progress import IngestBar

    print("The collection is empty: ingesting the bundled corpus first (once).", file=sys.stderr)
    bar = IngestBar(desc="ingest corpus")
    try:
        rag.ensure_corpus(progress=bar)
    finally:
        bar.close()


def format_sources(answer) -> str:
    """The numbered sources the answer cites (all retrieved ones when it cites none)."""
    shown = answer.cited_sources or answer.sources
    lines = []
    for source in shown:
        where = source.source
        if source.location():
            where += f", {source.location()}"
        if source.section and source.title and source.section.startswith(source.title):
            label = source.section  # the section path already starts with the title
        else:
            label = " > ".join(part for part in (source.title, source.section) if part)
        lines.append(f"[{source.n}] {where}" + (f" ({label})" if label else "") + f"  score {source.score:.3f}")
    return "\n".join(lines)


def _print_answer(rag, question: str, history, args, stream: bool):
    """Ask, print the answer (streamed or whole) and its sources; return the Answer."""
    from rag_app.services.answer import Answer

    out = sys.stdout
    answer = None
    streamed = ""
    for item in rag.stream(question, history=history, k=args.k):
        if isinstance(item, Answer):
            answer = item
        elif stream:
            streamed += item
            out.write(item)
            out.flush()
    assert answer is not None
    if not stream:
        out.write(answer.text)
    elif streamed.strip() != answer.text.strip():
        if answer.text.strip() and answer.text.strip() in streamed:
            # Only the short answer was dropped; the sentences already on screen are the answer.
            follows = "the explanation" if answer.extra.get("form") == "explain" else "the quote"
            out.write(f"\n(the short answer above was not supported by the sources; {follows} is the answer)")
        else:
            # The grounding check replaced the streamed reply: show the final one.
            out.write("\n(corrected to what the sources support)\n" + answer.text)
    out.write("\n")
    if not answer.refused and answer.sources:
        out.write("\nSources:\n" + format_sources(answer) + "\n")
    out.flush()
    return answer


def run_ask(args: argparse.Namespace) -> int:
    rag = _rag(args)
    if args.json:
        answer = rag.ask(args.question, k=args.k)
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return 0
    _print_answer(rag, args.question, None, args, stream=not args.no_stream)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    rag = _rag(args)
    history: list[dict] = []
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about your documents; follow-ups keep the context. Type `exit` or press Ctrl-D to leave.")
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        question = line.strip()
        if not question:
            continue
        if question.lower() in {"exit", "quit", ":q"}:
            break
        answer = _print_answer(rag, question, history, args, stream=True)
        history.append({"role": "user", "content": question, "standalone": answer.standalone_question})
        history.append({"role": "assistant", "content": answer.text})
        print()
    return 0
