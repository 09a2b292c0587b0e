"""Ingest jobs: an upload is saved, then ingested on one background thread; `GET /v1/jobs/{id}` polls it.

Jobs run one at a time (ingest is the heavy part and the store has one writer anyway). A job lives in the
process that accepted it; finished jobs are forgotten oldest first beyond `serve.jobs_kept`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag_app.errors import RagError


@dataclass
class Job:
    id: str
    collection: str
    files: list[str]
    rejected: list[dict[str, str]]
    status: str = "queued"  # queued | running | succeeded | failed
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"object": "ingest.job", **asdict(self)}


class JobRegistry:
    def __init__(self, rag, keep: int = 100):
        self.rag = rag
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-ingest")

    def submit(self, collection: str, paths: list[Path], rejected: list[dict[str, str]]) -> Job:
        job = Job(id="job-" + uuid.uuid4().hex[:16], collection=collection, files=[p.name for p in paths],
                  rejected=rejected, progress={"files_done": 0, "files_total": len(paths), "chunks_written": 0})
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, paths)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, paths: list[Path]) -> None:
        job.status = "running"

        def progress(p) -> None:
            job.progress = {"files_done": p.files_done, "files_total": p.files_total,
                            "chunks_written": p.chunks_written, "current": p.current}

        try:
            summary = self.rag.ingest(paths, collection=job.collection, progress=progress)
        except RagError as exc:
            job.error, job.status = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - a bug: the job reports it, the server keeps serving
            import traceback

            traceback.print_exc()
            job.error, job.status = f"{type(exc).__name__}: {exc}", "failed"
        else:
            job.result = summary.to_dict()
            job.status = "succeeded" if summary.ok else "failed"
            if not summary.ok:
                job.error = "; ".join(f"{f.get('path')}: {f.get('error')}" for f in summary.failed)
        job.finished = time.time()

    def _forget_old(self) -> None:
        done = [job_id for job_id, job in self._jobs.items() if job.finished is not None]
        for job_id in done[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[job_id]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
