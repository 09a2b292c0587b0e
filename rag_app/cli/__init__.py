"""The `rag` command. Each subcommand lives in its own module with `register(subparsers)`.

A `RagError` becomes one line on stderr and exit code 2; exit code 1 means some files failed to ingest.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in help order. Each defines register(subparsers) and sets `func` on its parser.
COMMAND_MODULES = (
    "rag_app.cli.ask_cmd",
    "rag_app.cli.ingest_cmd",
    "rag_app.cli.serve_cmd",
    "rag_app.cli.mcp_cmd",
    "rag_app.cli.admin_cmd",
    "rag_app.cli.eval_cmd",
    "rag_app.cli.demo_cmd",
    "rag_app.cli.train_cmd",
)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", help="collection name (default: RAG_STORE__COLLECTION or 'default')")
    parser.add_argument("--chroma-url", help="use a Chroma server at this URL instead of the embedded store")
    parser.add_argument("--home", help="data directory (default: RAG_HOME or the per-user data dir)")


def settings_from_args(args: argparse.Namespace):
    """Settings from the environment, overridden by the common flags."""
    from rag_app.settings import Settings

    overrides = {
        "store.collection": getattr(args, "collection", None),
        "store.url": getattr(args, "chroma_url", None),
        "home": getattr(args, "home", None),
        "retrieve.k": getattr(args, "k", None),
        "device": getattr(args, "device", None),
    }
    return Settings().with_overrides(**overrides)  # a bad value is a SettingsError: one line, exit code 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Local, private question answering over your documents.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rag_app.errors import RagError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except RagError as exc:
        print(f"rag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
