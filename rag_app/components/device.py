"""Device and dtype choice, shared by the embedder, the LM and the demos."""

from __future__ import annotations

import functools
from pathlib import Path


def resolve_device(requested: str = "auto") -> str:
    """Return "cuda", "mps" or "cpu" for "auto"; validate an explicit choice."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        from rag_app.errors import RagError

        raise RagError("device 'cuda' was requested but no CUDA GPU is visible: use --device cpu or RAG_DEVICE=auto")
    return requested


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """AMX (Intel) or AVX512-BF16 (AMD Zen 4+) make bf16 matmuls on CPU faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_dtype(requested: str, device: str):
    """Map a dtype setting to a torch dtype; "auto" picks bf16 only where it is fast."""
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if requested != "auto":
        return table[requested]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32
