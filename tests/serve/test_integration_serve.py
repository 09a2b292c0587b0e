"""`rag serve` with the real default models (packaged MiniLM embedder, SmolLM2 LM): upload a tiny document, ask one
question through the openai client, get the cited answer."""

from __future__ import annotations

import pytest
from serve_support import Server, wait_for_job

pytestmark = pytest.mark.integration

DOC = ("# Trains\n\nThe Shinkansen is a network of high-speed railway lines in Japan. The first line opened in 1964 "
       "between Tokyo and Osaka.\n")


def test_real_models_answer_an_uploaded_document(tmp_path):
    openai = pytest.importorskip("openai")
    server = Server(tmp_path / "home", "--collection", "tiny", profile=None).start(timeout=600)
    try:
        with server.client() as http:
            ready = http.get("/ready").json()
            assert ready["llm"].startswith("SmolLM2-135M-Instruct+reader@") and "MiniLM" in ready["embedder"]
            upload = http.post("/v1/ingest", files=[("files", ("trains.md", DOC.encode(), "text/markdown"))])
            assert upload.status_code == 202, upload.text
            assert wait_for_job(http, upload.json()["id"], timeout=300)["status"] == "succeeded"
        client = openai.OpenAI(base_url=server.base, api_key="unused", max_retries=0, timeout=300)
        stream = client.chat.completions.create(model="rag:tiny", stream=True, messages=[
            {"role": "user", "content": "In which year did the first Shinkansen line open?"}])
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert "1964" in text and "[1]" in text
        assert chunks[-1].model_extra["refused"] is False
        assert chunks[-1].model_extra["sources"][0]["source"] == "trains.md"
        vectors = client.embeddings.create(model="rag", input=["high-speed railway"]).data
        assert len(vectors[0].embedding) == 384
    finally:
        server.stop()
