"""`rag eval retrieval|answers|open`: the evaluation commands (each in its own module)."""

from __future__ import annotations

import importlib


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate retrieval or answers on BEIR-format data")
    eval_sub = parser.add_subparsers(dest="eval_command", metavar="WHAT")
    for module_name in ("rag_app.cli.eval_retrieval", "rag_app.cli.eval_answers", "rag_app.cli.eval_open"):
        importlib.import_module(module_name).register(eval_sub)
    parser.set_defaults(func=lambda args: parser.print_help())
