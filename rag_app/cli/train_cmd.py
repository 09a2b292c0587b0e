"""`rag train-reader`: fine-tune the LM as the answer service's span reader (LoRA), seeded and resumable."""

from __future__ import annotations

import json
from pathlib import Path

from rag_app.cli import settings_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-reader", help="fine-tune the LM to read answers from evidence, or to say there is none (LoRA)",
        description="Trains a LoRA adapter on extractive question-answer data, in exactly the prompt the answer "
                    "service builds: the question and the evidence sentences its ranker offers -> the verbatim "
                    "answer span, or 'unanswerable'. DATA is a folder laid out as ../shared/train (NQ-open oracle, "
                    "COVID-QA, QASPER) or a JSON-lines file of your own pairs: {\"question\", \"context\", "
                    "\"answers\": [...]} (empty answers: the context does not answer). Run it again with the same "
                    "arguments to resume after a stop. Use the adapter with RAG_LLM__ADAPTER=OUT/adapter.")
    parser.add_argument("data", nargs="+", type=Path, help="training data: folders and/or JSON-lines files")
    parser.add_argument("--out", type=Path, required=True, help="run folder (examples, checkpoints, the adapter)")
    parser.add_argument("--base", default="", help="the LM to adapt (default: the configured llm.model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-examples", type=int, default=None, help="train on a seeded sample of this many")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank")
    parser.add_argument("--top-layers", type=int, default=15,
                        help="adapt only the top N decoder layers (0: every layer)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--accumulate", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=25, help="optimizer steps between checkpoints")
    parser.add_argument("--answer-removed", type=float, default=0.0,
                        help="share of answerable questions also shown without their answer's sentences (-> "
                             "'unanswerable'); 0 for the shipped reader")
    parser.add_argument("--stop-after-steps", type=int, default=None,
                        help="stop (checkpointed) after this optimizer step; the same command goes on later")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--home", help="data directory (the converted base model is cached there)")
    parser.add_argument("--json", action="store_true", help="print the card as JSON")
    parser.set_defaults(func=run_train_reader)


def run_train_reader(args) -> int:
    from rag_app.training.trainer import ReaderTrainConfig, train_reader

    settings = settings_from_args(args)
    config = ReaderTrainConfig(data=list(args.data), out=args.out, base=args.base, seed=args.seed, epochs=args.epochs,
                               max_examples=args.max_examples, learning_rate=args.learning_rate, rank=args.rank,
                               alpha=2 * args.rank, top_layers=args.top_layers or None, batch_size=args.batch_size, accumulate=args.accumulate,
                               checkpoint_every=args.checkpoint_every, device=args.device, dtype=args.dtype,
                               stop_after_steps=args.stop_after_steps, removed=args.answer_removed)
    card = train_reader(config, settings, log=lambda m: print(m, flush=True) if not args.json else None)
    if args.json:
        print(json.dumps(card, indent=1))
    elif "dev" in card:
        print(f"dev: {json.dumps(card['dev'])}")
    return 0
