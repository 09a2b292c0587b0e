"""Converted embedder models: a sentence-transformers model exported once to OpenVINO IR or ONNX, cached, run, and
checked against torch fp32 on probe texts.

The embedder (`embedder.SentenceTransformerEmbedder`) owns tokenisation and batching; this module owns the files.
The cache is shared by every data home (`Settings.model_cache_dir`: the per-user cache folder unless set), so a
conversion, and above all the int8 calibration (25-35 s), is paid once per machine and model, not once per home.
Sharing is safe because a folder's name is a hash of everything its files depend on (`cache_key`: the model files,
the library versions, the export format, the calibration recipe and text), files are written to a temporary folder
and moved into place under a file lock, and every load checks the model against torch fp32 on probe texts. Layout,
stable while `EXPORT_VERSION` stays the same (a cache built by an older release keeps being used)::

    <cache_dir>/embedders/<model name>-<cache key>/openvino/   model.xml, model.bin, model_int8.xml, model_int8.bin,
                                                                tokenizer.json, meta.json
    <cache_dir>/embedders/<model name>-<cache key>/onnx/       model.onnx, model_int8.onnx, tokenizer.json, meta.json

`meta.json` holds the dimension, window, tokenizer flags, input names and the torch fp32 vectors of `PROBES`, which
every load compares with the converted model's own vectors (`check_probes`).

`openvino-int8` is the OpenVINO IR statically quantised by NNCF (int8 weights and activations: the AVX512-VNNI /
AVX-VNNI path), calibrated on passages of the bundled corpus (`corpus/`), so building it needs nothing outside the
product. Its vectors are not interchangeable with fp32 ones: the embedder records the quantisation in the collection
fingerprint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_app.errors import RagError

log = logging.getLogger(__name__)

#: Bump when the export format changes: old cache entries are then ignored.
EXPORT_VERSION = 1
#: Converted models must agree with torch fp32 at least this well on the probe texts, else torch is used.
#: openvino-int8: measured 0.978 (on "hello"; 0.993 min over 128 SciFact abstracts).
MIN_PROBE_COSINE = {"openvino": 0.999, "onnx": 0.999, "onnx-int8": 0.95, "openvino-int8": 0.97}
PROBES = [
    "Retrieval-augmented generation grounds a language model's answer in retrieved passages.",
    "hello",
    "Die Katze sitzt auf der Matte. 東京は日本の首都です。 Emojis 🙂 and numbers 3.14159 too!",
    "A much longer probe. " * 80,  # longer than the model's window: exercises truncation
]
#: Texts of the example batch the export traces the model with.
TRACE_TEXTS = ["hello world", "an example sentence, longer"]
#: The bundled corpus (as `rag_app.api.bundled_corpus_dir`): calibration text for static int8.
CALIBRATION_DIR = Path(__file__).resolve().parents[3] / "corpus"
#: Characters per calibration passage: about the model's 256-token window of English prose.
CALIBRATION_CHARS = 1200
#: How `_export_openvino_int8` calibrates; change it with the code, so cached int8 models are rebuilt.
CALIBRATION_RECIPE = "nncf.quantize TRANSFORMER, every passage, one per item, unpadded"


# ---------------------------------------------------------------------------------------------------------------------
# Where a conversion lives


def cache_key(name: str, model_path: str) -> str:
    """Changes when the model files, the backend libraries, the export format or the int8 calibration (recipe or
    text) change."""
    parts = [name, str(EXPORT_VERSION), CALIBRATION_RECIPE, str(CALIBRATION_CHARS), _calibration_digest()]
    path = Path(model_path)
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file() and ".git" not in file.parts and file.suffix not in {".md", ".onnx", ".xml", ".bin"}:
                stat = file.stat()
                parts.append(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    for lib in ("torch", "sentence_transformers", "transformers", "openvino", "onnxruntime", "onnx", "nncf"):
        try:
            from importlib.metadata import version

            parts.append(f"{lib}={version(lib.replace('_', '-'))}")
        except Exception:  # noqa: BLE001 - not installed
            parts.append(f"{lib}=-")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _calibration_digest() -> str:
    """A hash of the calibration passages (missing corpus: '-', and the int8 build says why it cannot run)."""
    try:
        texts = calibration_texts()
    except RagError:
        return "-"
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]


def export_dir(cache_dir: Path | None, name: str, model_path: str, backend: str) -> Path:
    """The folder of one model's conversion for `backend` (onnx and onnx-int8 share one)."""
    base = cache_dir or Path(tempfile.gettempdir()) / "rag-app-embedders"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-60:]
    kind = "openvino" if backend.startswith("openvino") else "onnx"  # int8 sits beside its fp32 source
    return base / "embedders" / f"{safe}-{cache_key(name, model_path)}" / kind


def model_file(folder: Path, backend: str) -> Path:
    """The file whose presence marks a complete conversion for `backend`."""
    name = {"onnx-int8": "model_int8.onnx", "onnx": "model.onnx", "openvino-int8": "model_int8.xml"}.get(
        backend, "model.xml")
    return folder / name


def discard(folder: Path, backend: str) -> None:
    """Remove `backend`'s conversion from `folder` (one that failed to load or its check), under the folder's lock,
    so that the next load builds it again. Other backends' files there are kept."""
    from filelock import FileLock

    target = model_file(folder, backend)
    with FileLock(str(folder) + ".lock"):
        target.unlink(missing_ok=True)  # first: its presence marks a complete conversion
        if target.suffix == ".xml":
            target.with_suffix(".bin").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------------
# Loading (and converting once)


@dataclass(frozen=True)
class ExportSource:
    """What a conversion needs from the embedder: the fp32 model, how it is fed, and its reference vectors."""

    model: Any  # the sentence-transformers model, fp32 on CPU
    input_names: list[str]
    trace_batch: dict[str, np.ndarray]  # a padded batch of `TRACE_TEXTS`: {input name: int64 (rows, length)}
    tokenizer_json: str
    meta: dict  # name, dim, max_tokens, lower, pad_id, input_names, probe_vectors (torch fp32 vectors of PROBES)
    # Tokenises and pads texts exactly as the embedder feeds the model (for calibration batches).
    feed: Callable[[list[str]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Converted:
    """A loaded conversion: its runner and what the embedder needs to tokenise for it."""

    runner: Callable[[dict[str, np.ndarray]], np.ndarray]  # with `input_names`, like the embedder's torch runner
    precision: str
    tokenizer_json: str
    dim: int
    max_tokens: int
    lower: bool
    pad_id: int
    probe_vectors: np.ndarray


def load_converted(backend: str, folder: Path, prepare: Callable[[], ExportSource], *, dtype: str,
                   threads: int) -> Converted:
    """Open the conversion in `folder`, converting first (once, under a file lock) when it is not there.

    Args:
        backend: openvino, openvino-int8, onnx or onnx-int8.
        folder: from `export_dir`.
        prepare: builds the `ExportSource`; called only when a conversion is needed.
        dtype: the requested embedder dtype (OpenVINO runs bf16 for auto/bfloat16 where the CPU is fast at it).
        threads: CPU threads for inference; 0 lets the runtime choose.
    """
    target = model_file(folder, backend)
    if not target.exists():
        from filelock import FileLock

        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if not target.exists():
                export(backend, folder, prepare())
    meta = json.loads((folder / "meta.json").read_text())
    if backend.startswith("openvino"):
        precision = openvino_precision(dtype, int8=backend == "openvino-int8")
        runner = _OpenVINORunner(target, meta["input_names"], precision, threads, bf16_output=precision == "bf16")
        if backend == "openvino-int8":
            precision = f"int8 ({precision} between)"  # the ops NNCF leaves unquantised run in this precision
    else:
        precision = "int8" if backend == "onnx-int8" else "f32"
        runner = _OnnxRunner(target, threads)
    return Converted(runner=runner, precision=precision, tokenizer_json=(folder / "tokenizer.json").read_text(),
                     dim=int(meta["dim"]), max_tokens=int(meta["max_tokens"]), lower=meta["lower"],
                     pad_id=meta["pad_id"], probe_vectors=np.asarray(meta["probe_vectors"], dtype=np.float32))


def openvino_precision(dtype: str, int8: bool = False) -> str:
    """OpenVINO's inference precision for an embedder dtype: bf16 for auto/bfloat16 where the CPU is fast at it.

    For the int8 model this is the precision of the ops NNCF leaves unquantised (attention, softmax, LayerNorm,
    GELU): bf16 on AVX512-BF16 (measured at fp32's nDCG on Zen 5), but fp32 under ``auto`` on AMX CPUs (explicit
    ``bfloat16`` still gives bf16), where bf16 there moved short texts' vectors enough to cost 0.026 dense nDCG@10
    on SciFact dev (0.667 vs 0.690 with fp32 between; docs/benchmarks.md, "The fast path on every CPU")."""
    from rag_app.components.device import cpu_has_amx, cpu_has_fast_bf16

    if dtype == "float16":
        return "f16"
    if dtype == "bfloat16" or (dtype == "auto" and not (int8 and cpu_has_amx())):
        return "bf16" if cpu_has_fast_bf16() else "f32"
    return "f32"


def check_probes(backend: str, reference: np.ndarray, got: np.ndarray) -> None:
    """Raise RagError when the converted model's probe vectors stray from torch fp32 beyond `MIN_PROBE_COSINE`."""
    cosine = float((got * reference).sum(axis=1).min())
    if cosine < MIN_PROBE_COSINE[backend]:
        raise RagError(f"{backend} vectors disagree with torch fp32 (min cosine {cosine:.4f} on probe texts)")


# ---------------------------------------------------------------------------------------------------------------------
# Converting


@contextlib.contextmanager
def _root_log_level_at_least(level: int) -> Iterator[None]:
    """onnxruntime.quantization logs every skipped node on the root logger: raise its level for a while."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(max(saved, level))
    try:
        yield
    finally:
        root.setLevel(saved)


def export(backend: str, folder: Path, source: ExportSource) -> None:
    """Convert the model (fp32) into `folder`, atomically: files appear under their final names only when done."""
    import torch

    log.info("converting embedder %s for the %s backend into %s (once)", source.meta["name"], backend, folder)
    names = source.input_names

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner, input_names):
            super().__init__()
            self.inner = inner
            self.input_names = input_names

        def forward(self, *tensors):
            return self.inner(dict(zip(self.input_names, tensors)))["sentence_embedding"]

    wrapper = _Wrapper(source.model, names).eval()
    example = tuple(torch.from_numpy(source.trace_batch[n]) for n in names)

    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
    try:
        with warnings.catch_warnings(), _root_log_level_at_least(logging.WARNING):
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            if backend == "openvino":
                files = _export_openvino(wrapper, example, names, work)
            elif backend == "openvino-int8":
                files = _export_openvino_int8(wrapper, example, names, work, folder, source.feed)
            else:
                files = _export_onnx(wrapper, example, names, work, folder, int8=backend == "onnx-int8")
            (work / "tokenizer.json").write_text(source.tokenizer_json)
            (work / "meta.json").write_text(json.dumps(source.meta))
            for name in ["tokenizer.json", "meta.json", *files]:
                os.replace(work / name, folder / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_openvino(wrapper, example: tuple, names: list[str], work: Path) -> list[str]:
    import openvino as ov
    import torch

    with torch.no_grad():
        converted = ov.convert_model(wrapper, example_input=example)
    for port, name in zip(converted.inputs, names):
        port.get_tensor().set_names({name})
    ov.save_model(converted, str(work / "model.xml"), compress_to_fp16=False)
    return ["model.bin", "model.xml"]  # .bin first: the .xml's presence marks a complete model


def _export_openvino_int8(wrapper, example: tuple, names: list[str], work: Path, folder: Path,
                          feed: Callable[[list[str]], dict[str, np.ndarray]]) -> list[str]:
    import openvino as ov

    try:
        import nncf
    except ImportError as exc:
        raise RagError("the openvino-int8 backend quantises with NNCF, which is not installed: run "
                       "`pip install nncf` (a dependency of rag-app), or use RAG_EMBEDDER__BACKEND=openvino for a "
                       "new collection") from exc

    files: list[str] = []
    if (folder / "model.xml").exists():  # int8 after fp32: quantise the IR already there
        model = ov.Core().read_model(str(folder / "model.xml"))
    else:
        files = _export_openvino(wrapper, example, names, work)
        model = ov.Core().read_model(str(work / "model.xml"))
    # One passage per calibration item: padding would add the pad positions' activations to the ranges.
    texts = calibration_texts()
    dataset = nncf.Dataset(texts, lambda text: feed([text]))
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(texts))
    ov.save_model(quantized, str(work / "model_int8.xml"), compress_to_fp16=False)
    return [*files, "model_int8.bin", "model_int8.xml"]  # .bin first: the .xml's presence marks a complete model


def calibration_texts(folder: Path | None = None, chars: int = CALIBRATION_CHARS) -> list[str]:
    """The bundled corpus (`CALIBRATION_DIR` unless `folder`) cut into passages of up to `chars` characters at
    paragraph ends, in file order."""
    folder = folder or CALIBRATION_DIR
    files = sorted(folder.rglob("*.md"))
    if not files:
        raise RagError(f"no calibration text: the bundled corpus {folder} has no .md files; reinstall rag-app, or "
                       "use RAG_EMBEDDER__BACKEND=auto")
    passages: list[str] = []
    for file in files:
        current = ""
        for paragraph in (p.strip() for p in file.read_text(encoding="utf-8").split("\n\n")):
            if current and len(current) + len(paragraph) > chars:
                passages.append(current)
                current = ""
            current = f"{current}\n\n{paragraph}".strip()[: 4 * chars]
        if current:
            passages.append(current)
    return passages


def _export_onnx(wrapper, example: tuple, names: list[str], work: Path, folder: Path, int8: bool) -> list[str]:
    import torch

    files: list[str] = []
    fp32 = folder / "model.onnx"
    if fp32.exists():  # int8 after fp32: quantise the export already there
        shutil.copy2(fp32, work / "model.onnx")
    else:
        with torch.no_grad():
            torch.onnx.export(
                wrapper, example, str(work / "model.onnx"), input_names=names, output_names=["embedding"],
                dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names}, "embedding": {0: "batch"}},
                opset_version=17, dynamo=False)
        files.append("model.onnx")
    if int8:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Dynamic int8 (u8 activations × s8 weights: the AVX512-VNNI path), per channel for accuracy.
        quantize_dynamic(str(work / "model.onnx"), str(work / "model_int8.onnx"),
                         weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        files.append("model_int8.onnx")
    return files


# ---------------------------------------------------------------------------------------------------------------------
# Running


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class _OpenVINORunner:
    """One padded batch {input name: int64 array} → (rows, dim) float32, L2-normalised, on OpenVINO's CPU plugin.

    With `bf16_output` the model is asked for a bf16 result: the CPU plugin otherwise keeps an f32 "tail" reaching
    back from the f32 output through every residual Add and LayerNorm, with a layout reorder on each side, and the
    whole residual stream ran in f32. Measured (docs/benchmarks.md, "bf16 to the output"): the unquantised model on
    AMX 14 % less CPU time per token, cosine to torch fp32 ≥ 0.99994, SciFact dev nDCG@10 within 0.0015; the int8
    model with bf16 between on Zen 4 3 % less (its matmuls already int8), vectors as close to fp32 as before.
    """

    def __init__(self, xml: Path, input_names: list[str], precision: str, threads: int, bf16_output: bool = False):
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        model = core.read_model(str(xml))
        if bf16_output:
            steps = ov.preprocess.PrePostProcessor(model)
            steps.output(0).tensor().set_element_type(ov.Type.bf16)
            model = steps.build()
        self.xml, self.precision, self.threads, self.bf16_output = xml, precision, threads, bf16_output
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = input_names

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        result = np.asarray(self.request.infer({name: feed[name] for name in self.input_names})[
            self.compiled.outputs[0]])
        if self.bf16_output:  # numpy has no bf16: the result holds its raw 16 bits, the top half of an f32's
            return _normalise((result.view(np.uint16).astype(np.uint32) << 16).view(np.float32))
        return _normalise(result.astype(np.float32, copy=False))


class _OnnxRunner:
    """The same on ONNX Runtime's CPU provider."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return _normalise(self.session.run(None, {name: feed[name] for name in self.input_names})[0].astype(np.float32))
