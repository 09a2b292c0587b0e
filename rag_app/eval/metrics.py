"""Ranking metrics over document ids, as trec_eval / BEIR compute them.

A ranking is a list of document ids, best first; `relevant` maps a document id to its graded relevance (> 0 means
relevant). Every function returns a value for one query; `mean` averages them.

- nDCG@k uses linear gains (gain = grade) and log2(rank + 1) discounts, the trec_eval `ndcg_cut` convention that
  BEIR reports; the ideal ranking is the relevant documents sorted by grade.
- Recall@k is the share of the query's relevant documents found in the top k.
- MRR@k is 1 / rank of the first relevant document in the top k, or 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence


def _unique(ranking: Sequence[str]) -> list[str]:
    """A ranking with repeated ids counted once, at their best rank."""
    seen: set[str] = set()
    out = []
    for doc in ranking:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    return sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains[:k]))


def ndcg_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float:
    """Normalised discounted cumulative gain at k (0.0 when the query has no relevant document)."""
    ideal = dcg_at_k(sorted((g for g in relevant.values() if g > 0), reverse=True), k)
    if ideal == 0:
        return 0.0
    gains = [max(relevant.get(doc, 0.0), 0.0) for doc in _unique(ranking)]
    return dcg_at_k(gains, k) / ideal


def recall_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(_unique(ranking)[:k])) / len(wanted)


def mrr_at_k(ranking: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float:
    for rank, doc in enumerate(_unique(ranking)[:k], start=1):
        if relevant.get(doc, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, like numpy's default."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def evaluate_rankings(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]],
                      recall_ks: Sequence[int] = (1, 10, 100), ndcg_k: int = 10, mrr_k: int = 10) -> dict[str, float]:
    """Mean metrics over the queries that have relevance judgements (as BEIR does).

    Args:
        rankings: query id -> ranked document ids (a query with no ranking scores 0).
        qrels: query id -> {document id: grade}.

    Returns:
        {"ndcg@10": ..., "recall@1": ..., "recall@10": ..., "recall@100": ..., "mrr@10": ..., "queries": n}.
    """
    judged = [qid for qid, rel in qrels.items() if any(g > 0 for g in rel.values())]
    out: dict[str, float] = {f"ndcg@{ndcg_k}": mean(ndcg_at_k(rankings.get(q, []), qrels[q], ndcg_k) for q in judged)}
    for k in recall_ks:
        out[f"recall@{k}"] = mean(recall_at_k(rankings.get(q, []), qrels[q], k) for q in judged)
    out[f"mrr@{mrr_k}"] = mean(mrr_at_k(rankings.get(q, []), qrels[q], mrr_k) for q in judged)
    out["queries"] = len(judged)
    return out
