"""Refit the extractive reader's two fitted parts: the sentence ranker (on squad, squad2_dev and papers_dev
together) and the few-shot reader's span-shape terms (squad dev).

    python bench/reader_fit.py sentences  --home <home> --out S.jsonl [--set squad|squad2_dev|papers_dev]  # ~1 min
    python bench/reader_fit.py fit-sentences S.jsonl [S2.jsonl ...]
    python bench/reader_fit.py candidates --home <home> --out C.jsonl [--starts 32]   # record (~4 min)
    python bench/reader_fit.py fit-candidates C.jsonl [--starts 24]

`<home>` holds (or gets) the set's collection: what `rag eval answers --corpus ../shared/eval/<set>` builds, or for
papers_dev `papers_dev_pdfs` as `bench/papers_eval.py` builds it. Recording runs the real default models over the
answerable dev questions; fitting is a softmax over each question's sentences (label: the sentence holds a gold
answer, for papers_dev from the question's paper; every set weighs the same) or candidate spans (objective: expected
F1), scored by leave-one-group-out cross-validation (article, squad2_dev's paragraph, paper), so a figure is never
measured on the group it was fitted on. Dev only: the held-out sets are
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

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SQUAD = EVAL / "squad"
_TOKEN = re.compile(r"[\w'’-]+")
SENTENCE_FEATURES = ["cosine", "overlap", "1/chunk rank", "1/bm25 rank", "log(1+words)", "answer kind",
                     "overlap with neighbours", "cosine with the sentence before"]
SHAPE_FEATURES = ["today's score", "mean token logprob", "share of question words", "starts with article",
                  "log(tokens+1)"]


def _app(home: str, data: Path = SQUAD):
    from rag_app.api import RAG
    from rag_app.eval.answers import load_answer_queries
    from rag_app.eval.data import corpus_file, default_collection
    from rag_app.settings import Settings

    rag = RAG(Settings(home=home))
    corpus = corpus_file(data)
    collection = default_collection(rag, corpus)
    rag.ingest([corpus], collection=collection)
    titles = {d["_id"]: d["title"] for d in map(json.loads, corpus.read_text(encoding="utf-8").splitlines())}
    return rag, rag.retriever(collection), load_answer_queries(data / "queries_dev.jsonl"), titles


def _set_questions(name: str, home: str):
    """(rag, retriever, [(id, question, answers, group, file or None)]) of one dev set's answerable questions; the
    group is what cross-validation leaves out: squad's article, squad2_dev's paragraph (one article), the paper."""
    if name == "papers_dev":
        from rag_app.api import RAG

        rag = RAG(home=home, collection="papers_dev_pdfs")
        rag.ingest(sorted((EVAL / "papers_dev").glob("*.pdf")))
        rows = [json.loads(line) for line in open(EVAL / "papers_dev" / "questions.jsonl", encoding="utf-8")]
        return rag, rag.retriever(), [(r["id"], r["q"], r["answers"], r["file"], r["file"])
                                      for r in rows if r.get("answers")]
    rag, retriever, queries, titles = _app(home, EVAL / name)
    return rag, retriever, [(q.id, q.text, q.answers, titles.get(q.corpus_id) if name == "squad" else q.corpus_id,
                             None) for q in queries if not q.unanswerable]


def record_sentences(args) -> None:
    from rag_app.eval.answers import best_over, contains
    from rag_app.services.extractive import answer_type
    from rag_app.services.grounding import SentenceWeights, holds_answer_type, rank_evidence

    rag, retriever, questions = _set_questions(args.set, args.home)
    plain = SentenceWeights(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    with open(args.out, "w", encoding="utf-8") as out:
        for qid, text, answers, group, file in questions:
            hits = retriever.retrieve(text)
            kind, asked = answer_type(text), {t.lower() for t in _TOKEN.findall(text)}
            rows = []
            for e in rank_evidence(text, hits, rag.embedder, weights=plain,
                                   max_sentences=rag.settings.answer.max_sentences):
                hit = hits[e.source - 1]
                lexical = (hit.extra or {}).get("lexical_rank")
                right_file = file is None or str(hit.metadata.get("source", "")).endswith(file)
                rows.append({"x": [e.cosine, e.overlap, 1 / e.source, 1 / lexical if lexical else 0.0,
                                   math.log1p(len(_TOKEN.findall(e.text))),
                                   float(holds_answer_type(e.text, kind, asked)), e.window_overlap,
                                   e.context_cosine],
                             "label": bool(right_file and best_over(contains, e.text, answers) > 0)})
            out.write(json.dumps({"id": qid, "set": args.set, "article": f"{args.set}:{group}", "rows": rows}) + "\n")


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
def softmax_fit(groups: list[tuple[np.ndarray, np.ndarray]], l2: float, weights=None) -> np.ndarray:
    """Weights maximising the (weighted) mean over groups of sum(softmax(X w) * y), minus l2 * |w|^2 (L-BFGS)."""
    import torch

    xs = [torch.tensor(x, dtype=torch.float32) for x, _ in groups]
    ys = [torch.tensor(y, dtype=torch.float32) for _, y in groups]
    share = torch.tensor(weights if weights is not None else [1.0] * len(groups), dtype=torch.float32)
    share = share / share.sum()
    w = torch.zeros(groups[0][0].shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -sum(s * (torch.softmax(x @ w, 0) * y).sum() for x, y, s in zip(xs, ys, share)) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def _set_shares(items: list[dict]) -> list[float]:
    """Each item's weight in a fit so that every dev set counts the same, whatever its size."""
    sizes = {s: sum(it.get("set") == s for it in items) for s in {it.get("set") for it in items}}
    return [1.0 / sizes[it.get("set")] for it in items]


def cross_validated_values(items: list[dict], groups, value, l2: float) -> list[float]:
    """`value(group, weights)` of every item, each scored with weights fitted on the other groups (articles)."""
    shares = _set_shares(items)
    values = [0.0] * len(items)
    for article in sorted({it["article"] for it in items}):
        train = [(g, s) for it, g, s in zip(items, groups, shares) if it["article"] != article and g[1].max() > 0]
        w = softmax_fit([g for g, _ in train], l2, [s for _, s in train])
        for i, (it, g) in enumerate(zip(items, groups)):
            if it["article"] == article:
                values[i] = value(g, w)
    return values


def cross_validated(items: list[dict], groups, value, l2: float) -> float:
    """Mean of `value(group, weights)` over items, each scored with weights fitted on the other articles."""
    return float(np.mean(cross_validated_values(items, groups, value, l2)))


def fit_sentences(args) -> None:
    """Fit the sentence ranker on every recording together (each set weighing the same), leave-one-group-out."""
    from rag_app.settings import Settings

    items = [{"set": "squad", **json.loads(line)} for path in args.paths for line in open(path, encoding="utf-8")]
    items = [it for it in items if it["rows"]]
    groups = [(np.array([r["x"] for r in it["rows"]]), np.array([float(r["label"]) for r in it["rows"]]))
              for it in items]
    answer = Settings().answer

    def at(k):
        return lambda g, w: float(g[1][np.argsort(-(g[0] @ w), kind="stable")[:k]].max())

    def offered(g, w):  # what the reader is shown: `offered_evidence` (best `count`, topic score within the margin)
        order = np.argsort(-(g[0] @ w), kind="stable")[:answer.evidence_sentences]
        topical = g[0][:, 0] + g[0][:, 1]
        kept = [i for i in order if topical[i] >= topical.max() - answer.evidence_margin] or list(order[:1])
        return float(g[1][kept].max())

    plain = np.array([1.0, 1.0, 0, 0, 0, 0, 0, 0])
    shipped = np.array([1.0, *answer.sentence_weights])
    sets = sorted({it["set"] for it in items})
    print(f"{len(items)} questions; sets {sets}; answer sentence among the retrieved sentences: "
          + ", ".join(f"{s} {np.mean([g[1].max() for it, g in zip(items, groups) if it['set'] == s]):.3f}"
                      for s in sets))
    for name, value in (("first", at(1)), ("first two", at(2)), ("first three", at(3)), ("offered", offered)):
        cv = cross_validated_values(items, groups, value, args.l2)
        for s in sets:
            mine = [i for i, it in enumerate(items) if it["set"] == s]
            print(f"{s:>10} answer sentence {name:>11}: cosine + overlap "
                  f"{np.mean([value(groups[i], plain) for i in mine]):.3f}, "
                  f"shipped {np.mean([value(groups[i], shipped) for i in mine]):.3f}, "
                  f"refit (CV) {np.mean([cv[i] for i in mine]):.3f}")
    w = softmax_fit([g for g in groups if g[1].max() > 0], args.l2,
                    [s for s, g in zip(_set_shares(items), groups) if g[1].max() > 0])
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
        if name == "sentences":
            p.add_argument("--set", default="squad", choices=("squad", "squad2_dev", "papers_dev"))
        if name == "candidates":
            p.add_argument("--starts", type=int, default=32)
    for name in ("fit-sentences", "fit-candidates"):
        p = sub.add_parser(name)
        p.add_argument("paths" if name == "fit-sentences" else "path", nargs="+" if name == "fit-sentences" else None)
        p.add_argument("--l2", type=float, default=1e-2 if name == "fit-sentences" else 1e-3)
        if name == "fit-candidates":
            p.add_argument("--starts", type=int, default=24)
    args = parser.parse_args()
    {"sentences": record_sentences, "candidates": record_candidates, "fit-sentences": fit_sentences,
     "fit-candidates": fit_candidates}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
