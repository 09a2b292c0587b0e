"""Does the lexical delta rank like a full rebuild? SciFact dev nDCG@10, BM25 only, full index vs main + delta.

    .venv/bin/python bench/lexical_delta_eval.py

One chunk per SciFact abstract (title + text, as `indexed_text` builds it); a seeded share of the corpus is held
out of the main segment and added as a delta (the state after writes, before the merge), optionally with a share
of the main segment deleted and re-added (tombstones + delta). The full index is what a merge produces. No store
and no embedder: the figure isolates the delta's scoring approximations (main-segment average length, document
frequencies that still count tombstoned chunks).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "eval" / "scifact"


def ndcg_at_10(index, queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> float:
    total = 0.0
    for qid, relevant in qrels.items():
        ranked = [rid for rid, _ in index.search(queries[qid], 10)]
        dcg = sum(relevant.get(rid, 0) / math.log2(i + 2) for i, rid in enumerate(ranked))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(relevant.values(), reverse=True)[:10]))
        total += dcg / ideal if ideal else 0.0
    return total / len(qrels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delta", type=float, nargs="*", default=[0.02, 0.1, 0.2], help="shares added as delta")
    parser.add_argument("--replaced", type=float, default=0.05, help="share of main deleted and re-added")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from rag_app.components.lexical import Delta, LexicalConfig, LexicalIndex, MainSegment, indexed_text, tokenize

    config = LexicalConfig()
    records = [(row["_id"], {"title": row.get("title", ""), "source": row["_id"]}, row["text"])
               for row in map(json.loads, open(SCIFACT / "corpus.jsonl", encoding="utf-8"))]
    queries = {row["_id"]: row["text"] for row in map(json.loads, open(SCIFACT / "queries_dev.jsonl", encoding="utf-8"))}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in list(open(SCIFACT / "qrels_dev.tsv", encoding="utf-8"))[1:]:
        qid, did, score = line.split()
        qrels[qid][did] = int(score)

    def put(rows):
        return [[rid, meta["source"], tokenize(indexed_text(meta, text, config.title_weight), config)]
                for rid, meta, text in rows]

    full = LexicalIndex(MainSegment.build(records, config, {}), Delta(), {})
    reference = ndcg_at_10(full, queries, qrels)
    print(f"full index ({len(records)} chunks): nDCG@10 {reference:.4f}")
    rng = random.Random(0)
    for share in args.delta:
        for replaced in (0.0, args.replaced):
            shuffled = records[:]
            rng.shuffle(shuffled)
            cut = int(len(records) * (1 - share))
            main = MainSegment.build(shuffled[:cut], config, {})
            delta = Delta()
            again = shuffled[: int(cut * replaced)]  # deleted, then written again (tombstones + delta)
            delta.apply({"put": put(shuffled[cut:] + again), "remove": []}, main)
            index = LexicalIndex(main, delta, {})
            score = ndcg_at_10(index, queries, qrels)
            print(f"main {cut} + delta {len(records) - cut + len(again)} (of which {len(again)} replaced main "
                  f"chunks): nDCG@10 {score:.4f} ({score - reference:+.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
