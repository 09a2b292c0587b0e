"""Crash safety of `RAG.ingest_documents`: the kill -9 harness of test_crash_safety, on LangChain documents.

A child process ingests the corpus as documents (one per section, grouped by source) with prune; it is killed at a
seeded random number of chunks written plus a seeded random delay, from an empty store or from one holding the
first version; a rerun must end exactly equal to an uninterrupted run.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from reliability_support import (
    PYTHON,
    StderrWatcher,
    assert_recovers,
    chunks_seen,
    corpus_documents,
    kill9,
    make_corpus,
    make_v2,
    rag_env,
    snapshot,
)

from rag_app.api import RAG
from rag_app.settings import Settings

TRIALS = 6
SEED = 20240611
BATCH = "8"
CHILD = str(Path(__file__).with_name("documents_child.py"))


def ingest_in_process(home, corpus):
    rag = RAG(Settings(profile="test", home=home))
    return rag, rag.ingest_documents(corpus_documents(corpus), prune=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill9_during_ingest_documents_then_rerun_equals_the_uninterrupted_result(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n_files=24, sections=10)
    v1_home = tmp_path / "v1-home"
    _, first = ingest_in_process(v1_home, corpus)
    assert first.ok and first.files.added == 24
    make_v2(corpus)

    reference_rag, reference_run = ingest_in_process(tmp_path / "reference-home", corpus)
    expected = snapshot(reference_rag.store())
    assert len(expected) == reference_run.chunks_written >= 250
    shutil.copytree(v1_home, tmp_path / "update-home")
    update_rag, update_run = ingest_in_process(tmp_path / "update-home", corpus)
    assert snapshot(update_rag.store()) == expected
    assert update_run.files.deleted == 2 and update_run.files.updated == 5
    writes = {"fresh": reference_run.chunks_written, "update": update_run.chunks_written}

    rng = random.Random(SEED)
    outcomes = []
    for trial in range(TRIALS):
        scenario = ("fresh", "update")[trial % 2]
        home = tmp_path / f"trial-{trial}"
        if scenario == "update":
            shutil.copytree(v1_home, home)
        target = rng.randrange(0, writes[scenario])
        delay = rng.uniform(0.0, 0.1)

        proc = subprocess.Popen([PYTHON, CHILD, str(corpus)], env=rag_env(home, RAG_INGEST__BATCH_CHUNKS=BATCH),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        watcher = StderrWatcher(proc)
        watcher.wait_for(lambda text: chunks_seen(text) >= target, timeout=300)
        time.sleep(delay)
        kill9(proc)
        proc.stdout.close()
        text = watcher.join()
        killed = proc.returncode == -9
        outcomes.append((scenario, target, round(delay, 3), chunks_seen(text), killed))
        assert killed or proc.returncode == 0, text[-2000:]

        assert_recovers(home, trial, outcomes[-1], expected, lambda h: ingest_in_process(h, corpus))

    print("\n(scenario, target chunks, extra delay s, chunks written at kill, killed mid-run):")
    for outcome in outcomes:
        print("  ", outcome)
    assert sum(killed for *_, killed in outcomes) >= TRIALS - 2, outcomes
