"""The parser pool (`ingest.isolation`): files parsed in worker processes, in order, each within its time and memory
limit; a worker that runs over or dies is replaced and only its file fails, with the reason."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from ingest.isolation import ParserPool, documents_from_json, documents_to_json
from ingest.loaders import load_file
from ingest.types import LoadError


def _big_html(path, paragraphs: int = 60_000):
    """A plain page that takes a few seconds and a few hundred MB to read as a tree (nothing hostile in it)."""
    body = "".join(f"<p>Paragraph {i} about herons and <b>otters</b>.</p>" for i in range(paragraphs))
    path.write_text(f"<html><body>{body}</body></html>")
    return path


def _workers() -> list[psutil.Process]:
    """This process's parser workers (children running `ingest.isolation._worker_entry`)."""
    return [p for p in psutil.Process().children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            and "_worker_entry" in " ".join(p.cmdline())]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\nThe heron nests in the mill.\n")
    (tmp_path / "b.txt").write_text("The otter eats crayfish.\n")
    return tmp_path


def test_results_equal_the_in_process_loaders_and_come_in_order(files):
    with ParserPool(workers=2, timeout_s=60) as pool:
        jobs = [pool.submit(files / name, name) for name in ("a.md", "b.txt", "a.md")]
        got = [pool.result(job) for job in jobs]
    assert got[0] == load_file(files / "a.md", "a.md") == got[2]
    assert got[1] == load_file(files / "b.txt", "b.txt")
    assert documents_from_json(documents_to_json(got[0])) == got[0]


def test_a_loader_error_is_the_reason_and_the_worker_goes_on(files):
    (files / "empty.txt").write_bytes(b"")
    with ParserPool(timeout_s=60) as pool:
        bad, good = pool.submit(files / "empty.txt", "empty.txt"), pool.submit(files / "a.md", "a.md")
        with pytest.raises(LoadError, match="empty file"):
            pool.result(bad)
        assert pool.result(good)[0].title == "A"


def test_a_file_over_its_time_limit_fails_and_the_next_one_is_parsed(files):
    slow = _big_html(files / "slow.html")
    with ParserPool(timeout_s=0.5) as pool:
        first = pool.submit(slow, "slow.html")
        second = pool.submit(files / "a.md", "a.md")  # queued behind it in the same worker
        started = time.monotonic()
        with pytest.raises(LoadError, match=r"timed out after 0.5 s"):
            pool.result(first)
        assert time.monotonic() - started < 10
        assert pool.result(second)[0].title == "A"  # sent again, to a fresh worker


def test_a_file_over_its_memory_limit_fails_with_the_limit(files):
    big = _big_html(files / "big.html", paragraphs=120_000)
    with ParserPool(timeout_s=120, memory_mb=64) as pool:
        job, after = pool.submit(big, "big.html"), pool.submit(files / "b.txt", "b.txt")
        with pytest.raises(LoadError, match="needed more than 64 MB"):
            pool.result(job)
        assert "otter" in pool.result(after)[0].segments[0].text


def test_a_worker_that_dies_costs_its_file_only(files):
    slow = _big_html(files / "slow.html", paragraphs=200_000)
    with ParserPool(timeout_s=120) as pool:
        job, after = pool.submit(slow, "slow.html"), pool.submit(files / "a.md", "a.md")
        workers = _workers()
        assert len(workers) == 1
        time.sleep(1.0)  # it is parsing now
        os.kill(workers[0].pid, signal.SIGKILL)
        with pytest.raises(LoadError, match="killed"):
            pool.result(job)
        assert pool.result(after)[0].title == "A"
    assert not _workers()  # closed: none left behind
