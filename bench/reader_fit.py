"""Refit the extractive reader's two fitted parts on squad dev: the sentence ranker and the span-shape terms.

    python bench/reader_fit.py sentences  --home <home> --out S.jsonl            # record (~1 min)
    python bench/reader_fit.py fit-sentences S.jsonl
    python bench/reader_fit.py candidates --home <home> --out C.jsonl [--starts 32]   # record (~4 min)
    python bench/reader_fit.py fit-candidates C.jsonl [--starts 24]

`<home>` holds (or gets) the collection `rag eval answers --corpus ../shared/eval/squad` builds. Recording runs the
real default models over the answerable dev questions; fitting is a softmax over each question's sentences (label:
the sentence holds a gold answer) or candidate spans (objective: expected F1), scored by leave-one-article-out
cross-validation, so a figure is never measured on the article it was fitted on. Dev only: the held-out sets are
never read. The fitted values are the defaults of `answer.sentence_weights` (refitted with the two context terms,
see docs/benchmarks.md) and `answer.reader_shape_weights` (fitted at commit 429f379, before `rag_app/text.py` read
words of any script; a rerun lands near them). After refitting the sentence ranker, refit the refusal rule
(`bench/refusal_fit.py`): it reads the best sentence's ranker score.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"
_TOKEN = re.compile(r"[\w'’-]+")
SENTENCE_FEATURES = ["cosine", "overlap", "1/chunk rank", "1/bm25 rank", "log(1+words)", "answer kind",
                     "overlap with neighbours", "cosine with the sentence before"]
SHAPE_FEATURES = ["today's score", "mean token logprob", "share of question words", "starts with article",
                  "log(tokens+1)"]


def _app(home: str):
    from rag_app.api import RAG
    from rag_app.eval.answers import load_answer_queries
    from rag_app.eval.data import corpus_file, default_collection
    from rag_app.settings import Settings

    rag = RAG(Settings(home=home))
    corpus = corpus_file(SQUAD)
    collection = default_collection(rag, corpus)
    rag.ingest([corpus], collection=collection)
    titles = {d["_id"]: d["title"] for d in map(json.loads, corpus.read_text(encoding="utf-8").splitlines())}
    return rag, rag.retriever(collection), load_answer_queries(SQUAD / "queries_dev.jsonl"), titles


# -- recording ------------------------------------------------------------------------------------------------------
def record_sentences(args) -> None:
    from rag_app.eval.answers import normalize_answer
    from rag_app.services.extractive import answer_type
    from rag_app.services.grounding import SentenceWeights, holds_answer_type, rank_evidence

    rag, retriever, queries, titles = _app(args.home)
    plain = SentenceWeights(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    with open(args.out, "w", encoding="utf-8") as out:
        for q in queries:
            hits = retriever.retrieve(q.text)
            golds = [normalize_answer(a) for a in q.answers]
            kind, asked = answer_type(q.text), {t.lower() for t in _TOKEN.findall(q.text)}
            rows = []
            for e in rank_evidence(q.text, hits, rag.embedder, weights=plain,
                                   max_sentences=rag.settings.answer.max_sentences):
                lexical = (hits[e.source - 1].extra or {}).get("lexical_rank")
                rows.append({"x": [e.cosine, e.overlap, 1 / e.source, 1 / lexical if lexical else 0.0,
                                   math.log1p(len(_TOKEN.findall(e.text))),
                                   float(holds_answer_type(e.text, kind, asked)), e.window_overlap,
                                   e.context_cosine],
                             "label": any(g and g in normalize_answer(e.text) for g in golds)})
            out.write(json.dumps({"id": q.id, "article": titles.get(q.corpus_id), "rows": rows}) + "\n")


def record_candidates(args) -> None:
    """Every candidate of the likelihood reader, from `--starts` first words and without shape terms, with what
    the fit needs; the service itself answers with its own settings (a second, real call)."""
    import rag_app.services.answer as answer_module
    from rag_app.eval.answers import best_over, f1_score
    from rag_app.services.extractive import span_candidates

    rag, retriever, queries, titles = _app(args.home)
    seen: dict = {}

    def recording(llm, messages, evidence, **kwargs):
        wide = dict(kwargs, starts=args.starts, shape_weights=(0.0, 0.0, 0.0, 0.0))
        seen["candidates"] = span_candidates(llm, messages, evidence, **wide)
        seen["near"] = list(kwargs.get("near", ()))
        return span_candidates(llm, messages, evidence, **kwargs)

    answer_module.span_candidates = recording
    service = answer_module.AnswerService(rag.settings, retriever, rag.llm, rag.embedder)
    with open(args.out, "w", encoding="utf-8") as out:
        for n, q in enumerate(queries):
            seen.clear()
            answer = service.ask(q.text)
            candidates = seen.get("candidates", [])
            rows = [{"text": c.text, "score": c.score, "tokens": c.tokens, "span_logprob": c.logprob - c.end_logprob,
                     "start_rank": c.start_rank, "f1": best_over(f1_score, c.text, q.answers)} for c in candidates]
            out.write(json.dumps({"id": q.id, "article": titles.get(q.corpus_id), "refused": answer.refused,
                                  "near": seen.get("near", []), "rows": rows}) + "\n")
            if n % 50 == 0:
                print(f"{n}/{len(queries)}", file=sys.stderr, flush=True)


# -- fitting --------------------------------------------------------------------------------------------------------
def softmax_fit(groups: list[tuple[np.ndarray, np.ndarray]], l2: float) -> np.ndarray:
    """Weights maximising the mean over groups of sum(softmax(X w) * y), minus l2 * |w|^2 (L-BFGS, torch)."""
    import torch

    xs = [torch.tensor(x, dtype=torch.float32) for x, _ in groups]
    ys = [torch.tensor(y, dtype=torch.float32) for _, y in groups]
    w = torch.zeros(groups[0][0].shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -sum((torch.softmax(x @ w, 0) * y).sum() for x, y in zip(xs, ys)) / len(xs) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def cross_validated(items: list[dict], groups, value, l2: float) -> float:
    """Mean of `value(group, weights)` over items, each scored with weights fitted on the other articles."""
    total = 0.0
    for article in sorted({it["article"] for it in items}):
        train = [g for it, g in zip(items, groups) if it["article"] != article and g[1].max() > 0]
        w = softmax_fit(train, l2)
        total += sum(value(g, w) for it, g in zip(items, groups) if it["article"] == article)
    return total / len(items)


def fit_sentences(args) -> None:
    items = [json.loads(line) for line in open(args.path, encoding="utf-8")]
    items = [it for it in items if it["rows"]]
    groups = [(np.array([r["x"] for r in it["rows"]]), np.array([float(r["label"]) for r in it["rows"]]))
              for it in items]

    def at(k):
        return lambda g, w: float(g[1][np.argsort(-(g[0] @ w), kind="stable")[:k]].max())

    plain = np.array([1.0, 1.0, 0, 0, 0, 0, 0, 0])
    for k in (1, 2, 3):
        cv = cross_validated(items, groups, at(k), args.l2)
        base = np.mean([at(k)(g, plain) for g in groups])
        print(f"answer sentence in the first {k}: cosine + overlap {base:.3f}, ranker (CV) {cv:.3f}")
    w = softmax_fit([g for g in groups if g[1].max() > 0], args.l2)
    print("weights, in units of the cosine's:", {n: round(float(v / w[0]), 3) for n, v in zip(SENTENCE_FEATURES, w)})


def shape_features(rows: list[dict], near: set[str]) -> np.ndarray:
    from rag_app.text import content_words

    out = []
    for r in rows:
        words = content_words(r["text"])
        out.append([r["score"], r["span_logprob"] / (r["tokens"] + 1),
                    sum(w in near for w in words) / len(words) if words else 0.0,
                    float(r["text"].split()[0].lower() in {"the", "a", "an"}), math.log(r["tokens"] + 1)])
    return np.array(out)


def fit_candidates(args) -> None:
    items = [json.loads(line) for line in open(args.path, encoding="utf-8")]
    items = [dict(it, rows=[r for r in it["rows"] if r["start_rank"] < args.starts]) for it in items]
    items = [it for it in items if it["rows"] and not it["refused"]]
    groups = [(shape_features(it["rows"], set(it["near"])), np.array([r["f1"] for r in it["rows"]])) for it in items]

    def picked_f1(g, w):
        return float(g[1][int(np.argmax(g[0] @ w))])

    oracle = np.mean([g[1].max() for g in groups])
    today = np.mean([picked_f1(g, np.eye(len(SHAPE_FEATURES))[0]) for g in groups])
    shaped = cross_validated(items, groups, picked_f1, args.l2)
    print(f"{len(items)} answered questions, {args.starts} first words: F1 of the picked span: oracle {oracle:.3f}, "
          f"today's score {today:.3f}, with the shape terms (CV) {shaped:.3f}")
    w = softmax_fit([g for g in groups if g[1].max() > 0], args.l2)
    print("weights, in units of today's score's:", {n: round(float(v / w[0]), 3) for n, v in zip(SHAPE_FEATURES, w)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sentences", "candidates"):
        p = sub.add_parser(name)
        p.add_argument("--home", required=True)
        p.add_argument("--out", required=True)
        if name == "candidates":
            p.add_argument("--starts", type=int, default=32)
    for name in ("fit-sentences", "fit-candidates"):
        p = sub.add_parser(name)
        p.add_argument("path")
        p.add_argument("--l2", type=float, default=1e-2 if name == "fit-sentences" else 1e-3)
        if name == "fit-candidates":
            p.add_argument("--starts", type=int, default=24)
    args = parser.parse_args()
    {"sentences": record_sentences, "candidates": record_candidates, "fit-sentences": fit_sentences,
     "fit-candidates": fit_candidates}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
