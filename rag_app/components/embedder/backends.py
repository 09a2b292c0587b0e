"""Which inference backend runs a local sentence-transformers model, and what its vectors are compatible with.

The backends are described in `rag_app.components.embedder.sentence_transformer`; the conversions in `export`.
"""

from __future__ import annotations

from rag_app.errors import RagError

BACKENDS = ("torch", "openvino", "openvino-int8", "onnx", "onnx-int8")
#: Backends whose vectors are not interchangeable with fp32 ones → the tag their collections' fingerprint carries.
QUANTISED_BACKENDS = {"openvino-int8": "int8-static-nncf", "onnx-int8": "int8-dynamic-ort"}


def backend_hint(recorded: str, configured: str) -> str:
    """For a fingerprint mismatch of the same model: the setting that opens the collection, e.g.
    ``RAG_EMBEDDER__BACKEND=openvino-int8``; '' when the models differ (the backend is not the fix)."""
    model, _, tag = recorded.partition("|")
    if model != configured.partition("|")[0]:
        return ""
    backend = next((b for b, t in QUANTISED_BACKENDS.items() if t == tag), None if tag else "auto")
    return f"RAG_EMBEDDER__BACKEND={backend}" if backend else ""


def backend_available(backend: str) -> bool:
    """True if the Python packages a backend needs are importable (nothing is loaded)."""
    import importlib.util

    needs = {"auto": [], "torch": ["torch"], "openvino": ["openvino"], "openvino-int8": ["openvino", "nncf"],
             "onnx": ["onnxruntime", "onnx"], "onnx-int8": ["onnxruntime", "onnx"]}[backend]
    return all(importlib.util.find_spec(name) is not None for name in needs)


def backend_for_collection(requested: str, recorded: str | None, device: str) -> str:
    """The backend setting an embedder gets for one collection.

    An explicit backend is kept (the store refuses a collection recorded otherwise, naming the setting that opens
    it). Under ``auto`` the vectors must match what the collection holds:

    - an existing collection (`recorded`: its recorded fingerprint, '' when it has none) keeps the backend its
      fingerprint implies: a quantisation tag (`QUANTISED_BACKENDS`) names its int8 backend, no tag stays ``auto``
      (the unquantised fast backend, `resolve_backend`);
    - a new one (`recorded` None) gets ``openvino-int8`` where it is the fastest at fp32's retrieval quality
      (`int8_is_fastest`: VNNI without AMX), else ``auto``.

    Args:
        requested: `embedder.backend`.
        recorded: the collection's recorded embedder fingerprint; None for a collection that does not exist yet.
        device: `settings.device` (auto, cpu, cuda, mps).
    """
    if requested != "auto":
        return requested
    if recorded is not None:
        tag = recorded.partition("|")[2]
        return next((backend for backend, t in QUANTISED_BACKENDS.items() if t == tag), "auto")
    return "openvino-int8" if int8_is_fastest(device) else "auto"


def int8_is_fastest(device: str) -> bool:
    """True where static int8 (`openvino-int8`) is the fastest backend measured at fp32's retrieval quality: the CPU
    does int8 dot products in one instruction (AVX512-VNNI, AVX-VNNI) and has no AMX, OpenVINO and NNCF are
    installed, and the model runs on the CPU. Flags and package lookups only: nothing is loaded (torch is imported
    only to resolve ``device=auto``).

    Measured (docs/benchmarks.md, "The fast path on every CPU"): on AVX512-VNNI without AMX int8 is 1.46x OpenVINO
    bf16 in CPU time at fp32's nDCG. With AMX, bf16 matmuls are already about as fast: int8 is 1.10x bf16 when the
    ops it leaves unquantised run in bf16, and that loses 0.026 dense nDCG@10 on SciFact (queries drift), or 0.99x
    bf16 with them in fp32 (`export.int8_between_precision`): no gain, so AMX CPUs keep the unquantised model."""
    from rag_app.components.device import cpu_has_amx, cpu_has_fast_int8, resolve_device

    if device not in ("auto", "cpu") or not cpu_has_fast_int8() or cpu_has_amx():
        return False
    if not backend_available("openvino-int8"):
        return False
    return device == "cpu" or resolve_device(device) == "cpu"


def resolve_backend(requested: str, device: str) -> str:
    """`auto` → OpenVINO on CPU where installed (measured fastest), else torch. Accelerators always use torch."""
    if requested != "auto":
        if requested not in BACKENDS:
            raise RagError(f"unknown embedder backend {requested!r}: use auto, {', '.join(BACKENDS)}")
        return requested
    if device == "cpu" and backend_available("openvino"):
        return "openvino"
    return "torch"
