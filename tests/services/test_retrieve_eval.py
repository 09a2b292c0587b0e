"""`rag eval retrieval` end to end on a tiny BEIR set, with the fake embedder (RAG_PROFILE=test)."""

from __future__ import annotations

import json

import pytest

DOCS = [
    ("d1", "Volcanoes", "Basalt lava flows from shield volcanoes in Hawaii."),
    ("d2", "Glaciers", "Glaciers carve U-shaped valleys as the ice moves downhill."),
    ("d3", "Deserts", "Sand dunes migrate with the prevailing desert winds."),
    ("d4", "Coral reefs", "Coral bleaching follows marine heatwaves and warm water."),
]
QUERIES = [("q1", "basalt lava hawaii"), ("q2", "glaciers carve valleys"), ("q3", "coral bleaching heatwaves"),
           ("q4", "unjudged query about sand")]
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d4", 1), ("q3", "d3", 0)]


@pytest.fixture
def beir(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    with open(folder / "corpus.jsonl", "w") as handle:
        for doc_id, title, text in DOCS:
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries_dev.jsonl", "w") as handle:
        for qid, text in QUERIES:
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels_dev.tsv", "w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid, doc_id, score in QRELS:
            handle.write(f"{qid}\t{doc_id}\t{score}\n")
    return folder


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_eval_retrieval_json(beir, monkeypatch, capsys, mode):
    from rag_app.cli import main

    monkeypatch.setenv("RAG_PROFILE", "test")
    assert main(["eval", "retrieval", "--corpus", str(beir), "--mode", mode, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == mode
    assert result["documents"] == 4 and result["chunks"] == 4
    assert result["metrics"]["queries"] == 3  # q4 has no judgements; q3's grade-0 row is not a relevant document
    assert result["metrics"]["ndcg@10"] == pytest.approx(1.0)
    assert result["metrics"]["recall@1"] == pytest.approx(1.0)
    assert result["metrics"]["recall@100"] == pytest.approx(1.0)
    assert result["metrics"]["mrr@10"] == pytest.approx(1.0)
    assert result["latency_ms"]["p50"] > 0 and result["eval_latency_ms"]["n"] == 4
    assert result["collection"].startswith("eval-tiny-")


def test_eval_retrieval_table_reuses_the_collection(beir, monkeypatch, capsys):
    from rag_app.cli import main

    monkeypatch.setenv("RAG_PROFILE", "test")
    assert main(["eval", "retrieval", "--corpus", str(beir), "--collection", "tiny-eval", "--limit", "2"]) == 0
    first = capsys.readouterr()
    assert "ndcg@10" in first.out and "recall@100" in first.out and "latency p50" in first.out
    assert main(["eval", "retrieval", "--corpus", str(beir), "--collection", "tiny-eval", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["collection"] == "tiny-eval" and again["chunks"] == 4  # not ingested twice


def test_eval_retrieval_missing_files_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from rag_app.cli import main

    monkeypatch.setenv("RAG_PROFILE", "test")
    (tmp_path / "empty").mkdir()
    assert main(["eval", "retrieval", "--corpus", str(tmp_path / "empty")]) == 2
    assert "queries" in capsys.readouterr().err


def test_document_ranking_keeps_each_document_at_its_best_chunk():
    from rag_app.components.store import Hit
    from rag_app.eval.retrieval import document_ranking

    hits = [Hit(id=f"c{i}", text="", metadata={"doc_id": doc}, score=1.0 - i / 10) for i, doc in enumerate("abacb")]
    assert document_ranking(hits) == ["a", "b", "c"]
    assert document_ranking(hits, limit=2) == ["a", "b"]
