"""The local embedder: any sentence-transformers model (by default the packaged all-MiniLM-L6-v2), run by one of
several inference backends (`EmbedderSettings.backend`, chosen in `backends.py`):

- ``torch``: the sentence-transformers model itself, in bf16 where the hardware runs it fast, else fp32.
- ``openvino``: the same model converted once to OpenVINO IR (cached under the data home), run with bf16 inference
  precision where the CPU has AVX512-BF16 or AMX. Fastest measured on CPU (see docs/benchmarks.md).
- ``openvino-int8``: that IR statically quantised to int8 by NNCF, calibrated on the bundled corpus; fastest on CPUs
  with AVX512-VNNI or AVX-VNNI and no AMX, where `auto` picks it for new collections (`get_embedder`).
- ``onnx`` / ``onnx-int8``: an ONNX export run by ONNX Runtime, fp32 or dynamically quantised to int8 (opt-in:
  int8 moves vectors too far from fp32 for this model; see docs/benchmarks.md).
- ``auto`` (here, once `get_embedder` has decided about int8): OpenVINO on CPU when it is installed, else torch.

All backends share one path: texts are tokenised once with the model's own fast tokenizer, sorted by length and
cut into padded batches of similar length (little padding), then run and put back in input order. The conversions,
their cache and their check live in `export`: every converted model is checked against the torch fp32 model
on probe texts when it is loaded; a backend that disagrees, or cannot be built, falls back to torch with a warning.
Vectors of the unquantised backends stay within cosine ~0.9999 of fp32, which is why their collection fingerprint
names the model only and they may be switched freely. The int8 backends' vectors drift further (cosine ~0.99), so
their fingerprint adds the quantisation (`QUANTISED_BACKENDS`): a collection built with one opens only with it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag_app.components.embedder.backends import QUANTISED_BACKENDS, resolve_backend
from rag_app.components.embedder.base import Embedder
from rag_app.components.embedder.token_spans import TokenSpans, reads_words_independently
from rag_app.components.packaged_models import packaged_embedder_path
from rag_app.errors import RagError
from rag_app.settings import PACKAGED_EMBEDDER, EmbedderSettings

if TYPE_CHECKING:
    from rag_app.components.embedder.export import ExportSource

log = logging.getLogger(__name__)


#: Texts longer than this get no slice counter: its offsets cost ~700 bytes per token (a 50 MB text file, one
#: segment, would need ~7 GB); such text is counted in pieces, as before.
MAX_TOKEN_SPANS_CHARS = 200_000


def batch_shape(rows: int, length: int, max_tokens: int) -> tuple[int, int]:
    """The padded (rows, length) a batch runs at: length up to a multiple of 8 (of 16 past 64 tokens; at most
    `max_tokens`), rows up to a power of two below 8 and a multiple of 8 above. The CPU runtimes keep state for every
    input shape they see (OpenVINO's runtime cache holds ~1 MB per shape, up to 5,000 shapes; oneDNN's primitives for
    torch), so a server embedding batches of every size grew without end; a few shapes repeat instead. Padded tokens
    are masked out and padded rows dropped, so the vectors are those of the unpadded batch (to float rounding)."""
    step = 8 if length <= 64 else 16
    length = min(max_tokens, -(-length // step) * step) if length > 1 else length
    rows = 1 << (rows - 1).bit_length() if rows <= 8 else -(-rows // 8) * 8
    return rows, max(length, 1)


class _Runner(Protocol):
    """Runs one padded batch: {input name: int64 array (rows, length)} → (rows, dim) float32, L2-normalised.

    The torch runner is below; those of the converted models are in `export`.
    """

    input_names: list[str]

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray: ...


class _TorchRunner(_Runner):
    def __init__(self, model, input_names: list[str]):
        self.model = model
        self.input_names = input_names

    def __call__(self, feed):
        import torch

        device = self.model.device
        features = {name: torch.from_numpy(feed[name]).to(device) for name in self.input_names}
        with torch.inference_mode():
            out = self.model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out.float(), p=2, dim=1)
        return out.cpu().numpy()


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model, on the fastest measured backend (see the module docstring).

    The model loads on first use, so work that needs no embedding (an unchanged re-ingest) never pays for it.
    """

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 64,
                 backend: str = "auto", cache_dir: str | Path | None = None, threads: int = 0,
                 offline: bool = False):
        self.model_ref = model
        self.offline = offline  # passed to the load as local_files_only: no hub access, whatever the environment
        self.requested_device = device
        self.requested_dtype = dtype
        self.requested_backend = backend
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.threads = threads
        self.name = "sentence-transformers/all-MiniLM-L6-v2" if model == PACKAGED_EMBEDDER else model.rstrip("/")
        self.backend: str | None = None  # resolved on load
        self._runner: _Runner | None = None
        self._st = None  # the sentence-transformers model, when loaded
        self._tokenizer = None  # `tokenizers.Tokenizer` truncating to the model window, or None (generic path)
        self._counter = None  # `tokenizers.Tokenizer` without truncation, for count_tokens
        self._lower = False
        self._independent_words = False  # the counter reads words independently (`token_spans`)
        self._pad_id = 0
        # One model shared by threads (Streamlit sessions, parallel asks); loading and inference are serialised.
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, cfg: EmbedderSettings, *, device: str, cache_dir: str, offline: bool) -> Embedder:
        return cls(cfg.model, device=device, dtype=cfg.dtype, batch_size=cfg.batch_size, backend=cfg.backend,
                   cache_dir=cache_dir, threads=cfg.threads, offline=offline)

    @property
    def fingerprint(self) -> str:
        # The name identifies the vector space of the unquantised backends (the store checks the dimension on
        # write); an int8 backend adds its quantisation. Known before loading: an explicitly requested backend
        # never falls back to another.
        tag = QUANTISED_BACKENDS.get(self.requested_backend)
        return f"{self.name}|{tag}" if tag else self.name

    # -----------------------------------------------------------------------------------------------------------------
    # Loading

    def _load(self):
        if self._runner is not None or self._st is not None:
            return self
        with self._lock:
            if self._runner is not None or self._st is not None:
                return self
            from rag_app.components.device import resolve_device

            self.device = resolve_device(self.requested_device)
            backend = resolve_backend(self.requested_backend, self.device)
            if backend in QUANTISED_BACKENDS and self.device != "cpu":
                raise RagError(f"embedder backend {backend!r} runs on CPU only (device is {self.device}): set "
                               "RAG_DEVICE=cpu, or RAG_EMBEDDER__BACKEND=auto for a new collection")
            if backend != "torch" and self.device != "cpu":
                log.warning("embedder backend %s runs on CPU only; using torch on %s", backend, self.device)
                backend = "torch"
            if backend != "torch":
                try:
                    self._load_converted(backend)
                    self.backend = backend
                    return self
                except Exception as exc:  # noqa: BLE001 - any failure of an optional backend falls back to torch
                    if self.requested_backend != "auto":
                        hint = (" (RAG_EMBEDDER__BACKEND=openvino gives new collections the unquantised model)"
                                if backend in QUANTISED_BACKENDS else "")
                        raise RagError(f"embedder backend {backend!r} failed: {type(exc).__name__}: {exc}{hint}"
                                       ) from exc
                    log.warning("embedder backend %s unavailable (%s: %s); using torch", backend, type(exc).__name__, exc)
                    self._runner = None
                    self.__dict__.pop("precision", None)  # describe() reports the torch dtype that really runs
            self._load_torch()
            self.backend = "torch"
            return self

    def _model_path(self) -> str:
        return packaged_embedder_path() if self.model_ref == PACKAGED_EMBEDDER else self.model_ref

    def _load_st(self, dtype=None):
        """The sentence-transformers model (fp32 unless `dtype`), with the tokenizer and window set up."""
        path = self._model_path()
        try:
            from sentence_transformers import SentenceTransformer

            # Never trust_remote_code: a model repository's own Python is not run.
            model = SentenceTransformer(path, device=self.device, trust_remote_code=False,
                                        local_files_only=self.offline,
                                        model_kwargs={"use_safetensors": True})  # never unpickle weights
        except Exception as exc:  # noqa: BLE001 - wrap loader failures into a message with a fix
            raise RagError(
                f"could not load embedder {self.model_ref!r} ({type(exc).__name__}: {exc}). Offline, use a local "
                "path or the packaged default; with internet, set RAG_OFFLINE=false to allow a hub download"
            ) from exc
        model.eval()
        if dtype is not None:
            model.to(dtype)
        return model

    @staticmethod
    def _token_path_info(model) -> tuple[object, list[str], bool, int] | None:
        """(raw fast tokenizer, input names, lowercase, pad id) when our own batching can drive `model`, else None."""
        try:
            from sentence_transformers.base.modules.transformer import Transformer
        except ImportError:  # older sentence-transformers
            from sentence_transformers.models import Transformer  # type: ignore[no-redef]
        first = model[0] if len(model) else None
        tokenizer = getattr(model, "tokenizer", None)
        raw = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(first, Transformer) or raw is None:
            return None
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
        if "input_ids" not in names or "attention_mask" not in names:
            return None
        return raw, names, bool(getattr(first, "do_lower_case", False)), int(tokenizer.pad_token_id or 0)

    def _setup_tokenizers(self, raw_json: str, max_tokens: int, lower: bool, pad_id: int) -> None:
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_str(raw_json)
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_str(raw_json)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._max_tokens = max_tokens
        self._lower = lower
        self._pad_id = pad_id
        self._independent_words = reads_words_independently(json.loads(raw_json))

    def _load_torch(self) -> None:
        from rag_app.components.device import resolve_dtype

        self.torch_dtype = resolve_dtype(self.requested_dtype, self.device)
        if self.threads > 0:
            import torch

            torch.set_num_threads(self.threads)
        model = self._load_st(self.torch_dtype)
        self._dim = int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                        else model.get_sentence_embedding_dimension())
        self._max_tokens = int(model.max_seq_length)
        info = self._token_path_info(model)
        if info is not None:
            raw, names, lower, pad_id = info
            self._setup_tokenizers(raw.to_str(), self._max_tokens, lower, pad_id)
            self._runner = _TorchRunner(model, names)
        self._st = model

    # -- converted backends (the files and the check live in export) -----------------------------------------

    def _load_converted(self, backend: str, rebuild: bool = True) -> None:
        from rag_app.components.embedder import export

        folder = export.export_dir(self.cache_dir, self.name, self._model_path(), backend)
        cached = export.model_file(folder, backend).exists()
        try:
            converted = export.load_converted(backend, folder, self._export_source, dtype=self.requested_dtype,
                                              threads=self.threads)
            self._dim, self._max_tokens = converted.dim, converted.max_tokens
            self._setup_tokenizers(converted.tokenizer_json, converted.max_tokens, converted.lower, converted.pad_id)
            self.precision = converted.precision
            self._runner = converted.runner
            export.check_probes(backend, converted.probe_vectors, self.embed(export.PROBES))
        except Exception as exc:  # noqa: BLE001 - a cached conversion that fails is rebuilt once, then the error stands
            if not cached or not rebuild:
                raise
            log.warning("cached %s model in %s failed (%s: %s); building it again", backend, folder,
                        type(exc).__name__, exc)
            self._runner = None
            export.discard(folder, backend)
            self._load_converted(backend, rebuild=False)

    def _export_source(self) -> ExportSource:
        """The fp32 model with a tracing batch and its probe vectors, for a conversion (tokenised as we do)."""
        from rag_app.components.embedder.export import PROBES, TRACE_TEXTS, ExportSource

        model = self._load_st()  # fp32 on CPU
        info = self._token_path_info(model)
        if info is None:
            raise RagError("the model is not a plain Transformer + pooling stack with a fast tokenizer")
        raw, names, lower, pad_id = info
        max_tokens = int(model.max_seq_length)
        self._setup_tokenizers(raw.to_str(), max_tokens, lower, pad_id)
        probe_vectors = self._embed_with(_TorchRunner(model, names), PROBES)
        trace_batch = self._pad([self._tokenizer.encode(t) for t in TRACE_TEXTS], names)
        meta = {"name": self.name, "dim": int(probe_vectors.shape[1]), "max_tokens": max_tokens, "lower": lower,
                "pad_id": pad_id, "input_names": names, "probe_vectors": probe_vectors.tolist()}
        return ExportSource(model=model, input_names=names, trace_batch=trace_batch, tokenizer_json=raw.to_str(),
                            meta=meta, feed=lambda texts: self._pad(self._encode(texts), names))

    # -----------------------------------------------------------------------------------------------------------------
    # Interface

    @property
    def dim(self) -> int:  # type: ignore[override]
        self._load()
        return self._dim

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        self._load()
        return self._max_tokens

    @property
    def tokenizer(self):
        """The transformers tokenizer (loads the sentence-transformers model if the backend did not)."""
        self._load()
        if self._st is None:
            self._st = self._load_st()
        return self._st.tokenizer

    #: Our token path counts with a tokenizer of its own; the fallback shares the model's, under the lock.
    counts_while_embedding = True

    def count_tokens(self, text: str) -> int:
        self._load()
        if self._counter is None:  # a transformers tokenizer sets its truncation on every call: not beside encode
            with self._lock:
                return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        return len(self._counter.encode(text.lower() if self._lower else text, add_special_tokens=False).ids)

    def token_spans(self, text: str) -> TokenSpans | None:
        """Counts of `text`'s slices from one tokenisation (`count_tokens` of a slice, where its ends cut no word);
        None where this tokenizer does not read words independently."""
        self._load()
        if self._counter is None or not self._independent_words or len(text) > MAX_TOKEN_SPANS_CHARS:
            return None
        if self._lower:
            lowered = text.lower()
            # Offsets must be those of `text`, and a slice must lower as it does inside the text (a final sigma
            # lowers by its context: "ΘΕΟΣ" alone ends in ς, inside "ΘΕΟΣ.Α" in σ).
            if len(lowered) != len(text) or "Σ" in text:
                return None
            text = lowered
        return TokenSpans(self._counter.encode(text, add_special_tokens=False))

    def _pad(self, encodings, names: list[str], bucketed: bool = False) -> dict[str, np.ndarray]:
        """One batch as model inputs; `bucketed` rounds its shape up to one of a few (`batch_shape`), the extra rows
        holding one masked-in pad token each (their vectors are dropped by the caller)."""
        rows, length = len(encodings), max(len(e.ids) for e in encodings)
        if bucketed:
            rows, length = batch_shape(rows, length, self._max_tokens)
        ids = np.full((rows, length), self._pad_id, dtype=np.int64)
        mask = np.zeros((rows, length), dtype=np.int64)
        mask[len(encodings):, 0] = 1
        types = np.zeros((rows, length), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: feed[name] for name in names}

    def _encode(self, texts: Sequence[str]) -> list:
        # As sentence-transformers does: strip, and lowercase where the model config asks for it.
        return self._tokenizer.encode_batch([t.strip().lower() if self._lower else t.strip() for t in texts])

    def _embed_with(self, runner: _Runner, texts: Sequence[str],
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Tokenise once, sort by length, run padded batches of similar length, restore input order."""
        encodings = self._encode(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: the biggest batch shows memory trouble early
        # Batches hold about `batch_size` full-window rows' worth of tokens, so short texts go in bigger batches.
        budget = self.batch_size * self._max_tokens
        out: np.ndarray | None = None
        start = 0
        while start < len(order):
            longest = batch_shape(1, int(lengths[order[start]]), self._max_tokens)[1]  # one row count per length
            rows = max(1, min(budget // max(longest, 1), 4 * self.batch_size, len(order) - start))
            index = order[start : start + rows]
            vectors = runner(self._pad([encodings[i] for i in index], runner.input_names, bucketed=True))[:rows]
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[index] = vectors
            start += rows
            if progress is not None:
                progress(rows)
        return out

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed all `texts` in length-sorted batches (hand over big slices: sorting works within one call)."""
        self._load()
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        with self._lock:
            if self._runner is None:  # a model our batching cannot drive: sentence-transformers' own encode
                return super().embed(texts, progress)
            return self._embed_with(self._runner, texts, progress)

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            vectors = self._st.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().cpu().numpy()

    def describe(self) -> dict:
        """What runs, for `rag doctor` and the benchmarks."""
        self._load()
        return {"name": self.name, "backend": self.backend, "device": self.device,
                "precision": getattr(self, "precision", str(getattr(self, "torch_dtype", "")).replace("torch.", "")),
                "dim": self._dim, "max_tokens": self._max_tokens}

