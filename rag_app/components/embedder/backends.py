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


def resolve_backend(requested: str, device: str) -> str:
    """`auto` → OpenVINO on CPU where installed (measured fastest), else torch. Accelerators always use torch."""
    if requested != "auto":
        if requested not in BACKENDS:
            raise RagError(f"unknown embedder backend {requested!r}: use auto, {', '.join(BACKENDS)}")
        return requested
    if device == "cpu" and backend_available("openvino"):
        return "openvino"
    return "torch"
