"""POST /v1/ingest (multipart upload → a job id) and GET /v1/jobs/{id} (its progress, status and result).

Uploads follow the UI's rules (`rag_app.services.uploads`): names are sanitised and a name with `..`, an absolute
path or a NUL byte is refused; each file is held to `ingest.max_file_mb`, the whole request to
`serve.max_upload_mb` (413).
"""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rag_app.serve.errors import BadRequest, NotFound, PayloadTooLarge
from rag_app.serve.routers import state_of
from rag_app.services.uploads import check_collection_name, save_uploads

router = APIRouter(tags=["ingest"])


@router.post("/ingest", status_code=202)
async def ingest(request: Request, files: list[UploadFile] = File(...), collection: str | None = Form(None)):
    state = state_of(request)
    name = check_collection_name((collection or "").strip().removeprefix("rag:") or state.collection)
    uploads = [(upload.filename or "", await upload.read()) for upload in files]
    result = await run_in_threadpool(save_uploads, state.settings, name, uploads)  # file writes: off the loop
    if not result.saved:
        reasons = "; ".join(f"{r['name']}: {r['error']}" for r in result.rejected) or "no files"
        too_big = result.rejected and all("larger than" in r["error"] for r in result.rejected)
        raise (PayloadTooLarge if too_big else BadRequest)(f"no file was accepted ({reasons})", param="files")
    job = state.jobs.submit(name, result.saved, result.rejected)
    return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get("/jobs/{job_id}")
def get_job(job_id: str, request: Request) -> dict:
    job = state_of(request).jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r} on this server (jobs live in the worker that accepted the upload)",
                       param="job_id")
    return job.to_dict()
