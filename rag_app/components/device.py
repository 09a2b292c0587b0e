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
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (`/proc/cpuinfo`); empty where they cannot be read (other
    systems), so every fast path below stays off there. The one place the CPU is asked: patch it in tests."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def cpu_has_fast_bf16() -> bool:
    """AMX (Intel) or AVX512-BF16 (AMD Zen 4+) make bf16 matmuls on CPU faster than fp32."""
    return not cpu_flags().isdisjoint({"amx_bf16", "avx512_bf16"})


def cpu_has_fast_int8() -> bool:
    """AMX-INT8, AVX512-VNNI or AVX-VNNI: int8 dot products in one instruction, which static int8 models need to be
    faster than bf16 (measured 1.46x OpenVINO bf16 on AVX512-VNNI, docs/benchmarks.md)."""
    return not cpu_flags().isdisjoint({"amx_int8", "avx512_vnni", "avx_vnni"})


def cpu_has_amx() -> bool:
    """Intel AMX (tile matrix units): bf16 matmuls there run about as fast as int8 ones for small encoders."""
    return not cpu_flags().isdisjoint({"amx_bf16", "amx_int8", "amx_tile"})


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
