"""Refit the refusal rule (`rag_app.services.grounding.REFUSAL_RULE`) on squad dev.

    python bench/refusal_fit.py record --home <home> --out R.jsonl     # ~3 min: retrieval and evidence, no LM
    python bench/refusal_fit.py fit R.jsonl [--cap 7] [--c 1.0]

`<home>` holds (or gets) the collection `rag eval answers --corpus ../shared/eval/squad` builds. Recording asks
every dev question twice, as `rag eval answers --unanswerable` does: over the whole collection (answerable) and
with its article hidden (unanswerable), and writes the `Relevance` features the answer service computes. Fitting is
an L2 logistic regression on standardised features, scored by leave-one-article-out cross-validation with the
refusal threshold chosen on the training articles (the most answerable questions refused there: `--cap` %), so a
figure is never measured on the article it was fitted on. It prints the cross-validated refusal rates, then the
rule fitted on every article as Python to paste into `grounding.py` and the threshold for `answer.min_relevance`.
Dev only: the held-out sets are never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad"
FEATURES = ["max_cosine", "max_overlap", "entity_coverage", "word_coverage", "best_evidence", "best_topical",
            "chunk_cosine", "lexical_share", "question_names"]


def record(args) -> None:
    from rag_app.api import RAG
    from rag_app.eval.answers import HidingRetriever, article_map, load_answer_queries
    from rag_app.eval.data import corpus_file, default_collection
    from rag_app.services.grounding import SentenceWeights, rank_evidence, relevance
    from rag_app.settings import Settings

    rag = RAG(Settings(home=args.home))
    corpus = corpus_file(SQUAD)
    collection = default_collection(rag, corpus)
    rag.ingest([corpus], collection=collection)
    retriever = rag.retriever(collection)
    articles = article_map(corpus)
    titles = {d["_id"]: d["title"] for d in map(json.loads, corpus.read_text(encoding="utf-8").splitlines())}
    cfg = rag.settings.answer
    with open(args.out, "w", encoding="utf-8") as out:
        for q in load_answer_queries(SQUAD / "queries_dev.jsonl"):
            for label, source in (("answerable", retriever),
                                  ("unanswerable", HidingRetriever(retriever, articles[q.corpus_id]))):
                hits = source.retrieve(q.text)
                evidence = rank_evidence(q.text, hits, rag.embedder, weights=SentenceWeights(*cfg.sentence_weights),
                                         max_sentences=cfg.max_sentences)
                signal = relevance(q.text, hits, evidence)
                out.write(json.dumps({"id": q.id, "pass": label, "article": titles[q.corpus_id],
                                      "features": signal.to_dict()}) + "\n")


def _matrix(rows: list[dict]) -> np.ndarray:
    """The features, NaN where a retrieval mode could not give one."""
    return np.array([[np.nan if r["features"].get(f) is None else float(r["features"][f]) for f in FEATURES]
                     for r in rows])


def _filled(x: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Missing features at the training rows' means: the rule itself reads a missing feature as its mean."""
    return np.where(np.isnan(x), means, x)


def _model(x: np.ndarray, unanswerable: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    # Label 1 = answerable, so the decision value is the log-odds that the documents answer the question.
    model = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x), ~unanswerable)
    return scaler, model


def _threshold(logits: np.ndarray, cap: float) -> float:
    """The logit below which at most `cap` % of these (answerable) questions fall."""
    ordered = np.sort(logits)
    return float(ordered[int(np.floor(cap / 100 * len(ordered)))])


def fit(args) -> None:
    rows = [json.loads(line) for line in open(args.path, encoding="utf-8") if line.strip()]
    x = _matrix(rows)
    unanswerable = np.array([r["pass"] == "unanswerable" for r in rows])
    article = np.array([r["article"] for r in rows])
    refused = np.zeros(len(rows), dtype=bool)
    for held in sorted(set(article)):
        train, test = article != held, article == held
        means = np.nanmean(x[train], axis=0)
        scaler, model = _model(_filled(x[train], means), unanswerable[train], args.c)
        train_logits = model.decision_function(scaler.transform(_filled(x[train], means)))
        bar = _threshold(train_logits[~unanswerable[train]], args.cap)
        refused[test] = model.decision_function(scaler.transform(_filled(x[test], means))) < bar
    print(f"leave-one-article-out ({len(set(article))} articles): unanswerable refused "
          f"{100 * refused[unanswerable].mean():.1f} %, answerable refused {100 * refused[~unanswerable].mean():.1f} %")
    x = _filled(x, np.nanmean(x, axis=0))
    scaler, model = _model(x, unanswerable, args.c)
    logits = model.decision_function(scaler.transform(x))
    bar = _threshold(logits[~unanswerable], args.cap)
    print(f"all articles, in sample: unanswerable refused {100 * (logits[unanswerable] < bar).mean():.1f} %, "
          f"answerable refused {100 * (logits[~unanswerable] < bar).mean():.1f} %")
    lines = [f'    ("{f}", {m:.4g}, {s:.4g}, {w:.4g}),' for f, m, s, w in
             zip(FEATURES, scaler.mean_, scaler.scale_, model.coef_[0])]
    print(f"REFUSAL_RULE = RefusalRule(bias={model.intercept_[0]:.4g}, features=(\n" + "\n".join(lines) + "\n))")
    print(f"answer.min_relevance = {1 / (1 + np.exp(-bar)):.4f}   # P(answerable) at the threshold logit {bar:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record")
    p.add_argument("--home", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("fit")
    p.add_argument("path")
    p.add_argument("--cap", type=float, default=7.0, help="most answerable questions refused, in %% (default 7)")
    p.add_argument("--c", type=float, default=1.0, help="inverse L2 strength (default 1)")
    args = parser.parse_args()
    {"record": record, "fit": fit}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
