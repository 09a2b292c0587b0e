"""Crash safety of the lexical index's delta writes and merges: `kill -9` an ingest of one added file at every step
of its lexical write (before and after each durable file: the delta segment, or the main segment's files when the
write merges, then the manifest; `CURRENT` is replaced after the last), then check with the kill -9 harness that a
reader's BM25 index already matches the store and a rerun ends exactly where an uninterrupted run does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability_support import assert_recovers, make_corpus, rag_env, run_child, snapshot

from rag_app.api import RAG
from rag_app.settings import Settings

CHILD = str(Path(__file__).with_name("lexical_child.py"))
MERGE = {"RAG_RETRIEVE__LEXICAL_DELTA_MIN": "0", "RAG_RETRIEVE__LEXICAL_DELTA_FRACTION": "0",
         "RAG_RETRIEVE__LEXICAL_MERGE": "inline"}
STATE_FILES = {"CURRENT", "build.lock", "main", "manifest", "seg"}


def settings(home, merge: bool) -> Settings:
    overrides = {"retrieve.lexical_delta_min": 0, "retrieve.lexical_delta_fraction": 0.0,
                 "retrieve.lexical_merge": "inline"} if merge else {}
    return Settings(profile="test", home=home).with_overrides(**overrides)


def run_lexical_child(home, file, merge: bool, stop_at: str | None = None) -> tuple[str, int]:
    """`file`: ingest it; None: run the background merge."""
    return run_child([CHILD, str(file) if file is not None else "--merge"],
                     rag_env(home, **(MERGE if merge else {})), stop_at)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("merge", [False, True], ids=["delta", "merge"])
def test_kill9_during_a_lexical_delta_write_or_merge(tmp_path, merge):
    corpus = make_corpus(tmp_path / "corpus", n_files=6, sections=4)
    added = make_corpus(tmp_path / "added", n_files=1, sections=3, seed=5) / "sub0" / "doc00.txt"
    base = tmp_path / "base-home"
    assert RAG(settings(base, merge)).ingest([corpus]).ok

    reference = tmp_path / "reference-home"
    shutil.copytree(base, reference)
    text, code = run_lexical_child(reference, added, merge)
    assert code == 0, text[-2000:]
    steps = int(text.rsplit("lexical-steps=", 1)[1].split()[0])
    assert steps == (3 if merge else 2)  # merge: terms.json, stamp.json, manifest; delta: segment, manifest
    reference_rag = RAG(settings(reference, merge))
    expected = snapshot(reference_rag.store())
    assert len(expected) > 24
    assert reference_rag.retriever().lexical.current().stats["delta"] == (0 if merge else 3)

    def rerun(home):
        rag = RAG(settings(home, merge))
        return rag, rag.ingest([added])

    trial = 0
    for step in range(1, steps + 1):
        for phase in ("step", "done"):
            home = tmp_path / f"trial-{trial}"
            shutil.copytree(base, home)
            text, code = run_lexical_child(home, added, merge, stop_at=f"lexical-{phase}={step}")
            assert code == -9, text[-2000:]
            assert_recovers(home, trial, (phase, step), expected, rerun)
            folder = home / "lexical" / "default"
            assert {p.name.split("-")[0] for p in folder.iterdir()} <= STATE_FILES, sorted(folder.iterdir())
            trial += 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill9_during_a_background_merge(tmp_path):
    """The background merge process killed before and after each durable write of its merged state: readers keep
    an index equal to the store (the old state or the merged one), and a rerun merges."""
    corpus = make_corpus(tmp_path / "corpus", n_files=6, sections=4)
    added = make_corpus(tmp_path / "added", n_files=1, sections=3, seed=5) / "sub0" / "doc00.txt"
    base = tmp_path / "base-home"
    assert RAG(settings(base, False)).ingest([corpus]).ok
    assert RAG(settings(base, False)).ingest([added]).ok  # a delta segment to merge
    expected = set(snapshot(RAG(settings(base, False)).store()))

    def merged_state(home) -> dict:
        reader = RAG(settings(home, False))
        index = reader.retriever().lexical.current()
        assert set(index.ids) == expected
        return index.stats

    reference = tmp_path / "reference-home"
    shutil.copytree(base, reference)
    text, code = run_lexical_child(reference, None, False)
    assert code == 0, text[-2000:]
    steps = int(text.rsplit("lexical-steps=", 1)[1].split()[0])
    assert steps == 3  # the merged main segment's terms.json and stamp.json, the manifest
    assert merged_state(reference) == {"main": len(expected), "delta": 0, "removed": 0, "segments": 0}

    for step in range(1, steps + 1):
        for phase in ("step", "done"):
            home = tmp_path / f"merge-{phase}-{step}"
            shutil.copytree(base, home)
            text, code = run_lexical_child(home, None, False, stop_at=f"lexical-{phase}={step}")
            assert code == -9, text[-2000:]
            assert merged_state(home)["main"] in (len(expected) - 3, len(expected)), (phase, step)
            text, code = run_lexical_child(home, None, False)  # a later merge sweeps the killed one's leftovers
            assert code == 0, text[-2000:]
            assert merged_state(home) == {"main": len(expected), "delta": 0, "removed": 0, "segments": 0}
            folder = home / "lexical" / "default"
            assert {p.name.split("-")[0] for p in folder.iterdir()} <= STATE_FILES | {"merge.lock"}, \
                sorted(folder.iterdir())
