"""`rag collections`, `rag doctor` and `rag prepare`: what is stored, whether everything works offline, and the
one-time work done ahead of the first question."""

from __future__ import annotations

import json
import time

from rag_app.cli import add_store_options, settings_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("collections", help="list collections with their chunk counts")
    add_store_options(parser)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_collections)

    parser = subparsers.add_parser("settings", help="list every setting with its environment variable and value")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_settings)

    parser = subparsers.add_parser("doctor", help="check models (offline) and the store")
    add_store_options(parser)
    parser.add_argument("--quick", action="store_true", help="check that files are present without loading models")
    parser.set_defaults(func=run_doctor)

    parser = subparsers.add_parser(
        "prepare", help="do the one-time work now: convert the models and index the bundled corpus",
        description="Load (and on first use convert) the embedder and the LM, and ingest the bundled corpus into the "
                    "default collection when it is empty, so that the app's first question only loads them. "
                    "`make run` runs it before starting the app; running it again is quick.")
    add_store_options(parser)
    parser.set_defaults(func=run_prepare)


def run_collections(args) -> int:
    from rag_app.api import RAG

    infos = RAG(settings_from_args(args)).collections()
    if args.json:
        print(json.dumps([info.__dict__ for info in infos]))
        return 0
    if not infos:
        print("no collections yet: `rag ingest PATH` creates one")
    for info in infos:
        print(f"{info.name:30} {info.count:>8} chunks   embedder={info.embedder}")
    return 0


def run_settings(args) -> int:
    """Every setting as `RAG_NAME = value` (secrets masked): the names a misspelled variable is checked against."""
    from rag_app.settings import Settings, env_name, setting_paths

    values = Settings().model_dump(mode="json")
    rows = []
    for path in setting_paths():
        value = values
        for part in path.split("."):
            value = value[part]
        if path.endswith("api_key") and value:
            value = "***"
        rows.append({"setting": path, "env": env_name(path), "value": value})
    if args.json:
        print(json.dumps(rows))
        return 0
    width = max(len(row["env"]) for row in rows)
    for row in rows:
        print(f"{row['env']:{width}} = {json.dumps(row['value'])}")
    return 0


def _check(name: str, func) -> tuple[bool, str]:
    started = time.perf_counter()
    try:
        detail = func()
        return True, f"ok   {name}: {detail} ({time.perf_counter() - started:.1f} s)"
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure
        return False, f"FAIL {name}: {exc}"


def run_doctor(args) -> int:
    from rag_app.api import RAG

    settings = settings_from_args(args)
    rag = RAG(settings)
    checks = []
    checks.append(_check("embedder files", lambda: rag.model_file("embedder")))
    checks.append(_check("LM files", lambda: rag.model_file("llm")))
    if not args.quick:
        def embed():
            embedder = rag.embedder
            vector = embedder.embed_query("offline check")
            return f"{embedder.name}, dim {len(vector)}, max {embedder.max_tokens} tokens"

        def generate():
            llm = rag.llm
            text = "".join(llm.stream([{"role": "user", "content": "Say OK."}], max_new_tokens=4, temperature=0.0))
            return f"{llm.name}: {text.strip()[:30]!r}"

        checks.append(_check("embedder loads offline", embed))
        checks.append(_check("LM loads offline", generate))

    def store():
        infos = rag.collections()
        where = settings.store.url or str(settings.chroma_dir)
        return f"{where}: {len(infos)} collections"

    checks.append(_check("store reachable", store))
    for _, line in checks:
        print(line)
    return 0 if all(ok for ok, _ in checks) else 1


def run_prepare(args) -> int:
    from rag_app.api import RAG
    from rag_app.cli.progress import IngestBar

    rag = RAG(settings_from_args(args))
    started = time.perf_counter()
    embedder = rag.embedder
    embedder.embed_query("warm-up")  # exports / converts the embedder on first use
    print(f"embedder ready: {embedder.name} ({time.perf_counter() - started:.1f} s)")
    step = time.perf_counter()
    bar = IngestBar(desc="index corpus")
    try:
        summary = rag.ensure_corpus(progress=bar)
    finally:
        bar.close()
    if summary is None:
        print(f"collection {rag.settings.store.collection!r} already holds documents: nothing to index")
    elif summary.files.added:
        print(f"indexed the bundled corpus: {summary.files.added} files, {summary.chunks_written} chunks "
              f"({time.perf_counter() - step:.1f} s)")
    else:
        print(f"brought the bundled corpus up to date: {summary.files.updated} files updated, "
              f"{summary.chunks_written} chunks ({time.perf_counter() - step:.1f} s)")
    if summary is not None and summary.failed:
        print(f"{len(summary.failed)} files failed: {summary.failed[0]}")
    step = time.perf_counter()
    rag.ask("What is a variational autoencoder?")  # converts the LM on first use and warms both models
    print(f"LM ready: {rag.llm.name} ({time.perf_counter() - step:.1f} s); total {time.perf_counter() - started:.1f} s")
    return 1 if summary is not None and summary.failed else 0
