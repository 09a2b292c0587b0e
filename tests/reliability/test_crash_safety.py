"""Crash safety: `kill -9` a real `python -m rag_app ingest` at seeded random points, rerun, compare exactly.

Half the trials start from an empty store, half from a store holding an older version of the tree (so the kill
can land between writing new chunks, updating kept ones and deleting stale ones, or during --prune). The kill
point is a seeded random number of chunks written (read from the CLI's progress bar on stderr) plus a seeded
random delay, so it lands at a random place in the write sequence however loaded the machine is.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time

import pytest
from reliability_support import (
    StderrWatcher,
    assert_recovers,
    chunks_seen,
    kill9,
    make_corpus,
    make_v2,
    rag_cmd,
    rag_env,
    snapshot,
)

from rag_app.api import RAG
from rag_app.settings import Settings

TRIALS = 10
SEED = 20240607
BATCH = "8"
def ingest_in_process(home, corpus):
    rag = RAG(Settings(profile="test", home=home))
    return rag, rag.ingest([corpus], prune=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill9_at_random_points_then_rerun_equals_the_uninterrupted_result(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n_files=30, sections=10)
    v1_home = tmp_path / "v1-home"
    first = subprocess.run(rag_cmd("ingest", str(corpus), "--quiet"), env=rag_env(v1_home), capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    make_v2(corpus)

    reference_rag, reference_run = ingest_in_process(tmp_path / "reference-home", corpus)
    expected = snapshot(reference_rag.store())
    assert len(expected) == reference_run.chunks_written >= 300
    shutil.copytree(v1_home, tmp_path / "update-home")
    update_rag, update_run = ingest_in_process(tmp_path / "update-home", corpus)
    assert snapshot(update_rag.store()) == expected  # the uninterrupted update reaches the same state
    writes = {"fresh": reference_run.chunks_written, "update": update_run.chunks_written}

    rng = random.Random(SEED)
    outcomes = []
    for trial in range(TRIALS):
        scenario = ("fresh", "update")[trial % 2]
        home = tmp_path / f"trial-{trial}"
        if scenario == "update":
            shutil.copytree(v1_home, home)
        target = rng.randrange(0, writes[scenario])
        delay = rng.uniform(0.0, 0.15)

        proc = subprocess.Popen(rag_cmd("ingest", str(corpus), "--prune", "--json"),
                                env=rag_env(home, RAG_INGEST__BATCH_CHUNKS=BATCH),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        watcher = StderrWatcher(proc)
        watcher.wait_for(lambda text: chunks_seen(text) >= target, timeout=300)
        time.sleep(delay)
        kill9(proc)
        proc.stdout.close()
        at_kill = chunks_seen(watcher.join())
        killed = proc.returncode == -9
        outcomes.append((scenario, target, round(delay, 3), at_kill, killed))

        assert_recovers(home, trial, outcomes[-1], expected, lambda h: ingest_in_process(h, corpus))

    print("\n(scenario, target chunks, extra delay s, chunks written at kill, killed mid-run):")
    for outcome in outcomes:
        print("  ", outcome)
    assert sum(killed for *_, killed in outcomes) >= TRIALS - 2, outcomes  # most kills landed mid-run
