"""The embedder's achieved FLOP/s next to a plain matrix-multiply benchmark, same CPU, runtime and dtype.

    python bench/flops_bench.py [--limit 256] [--reps 3] [--variants openvino-fp32,openvino-bf16,openvino-int8]
                                [--rows 4096] [--threads 0]

FLOPs of MiniLM-L6 (a BERT encoder: L = 6 layers, hidden d = 384, FFN f = 1536, read from the model's config.json)
per token of a batch padded to length n, counting a multiply-add as 2 FLOPs:

    per layer: Q, K, V and output projections 4 · 2d² + FFN 2 · 2df + attention scores QKᵀ and their product with
    V 2 · 2nd  =  8d² + 4df + 4nd
    per token: L · (8d² + 4df + 4nd)  ≈ 21.2 MFLOP + 9.2 kFLOP · n   (23.6 MFLOP at the 256-token window)

Embeddings, LayerNorm, softmax, GELU and pooling are left out (element-wise: under 1 % of the matmul work). The
embedder's figure counts the FLOPs of the padded batches it really runs (every batch's rows × padded length), over
the CPU seconds of the whole `embed()` call (tokenising and batching included, as an ingest pays them).

The matmul figure is the machine's practical peak for the same runtime and dtype: an OpenVINO model of chained
MatMuls with the FFN's shapes, (rows, d) · (d, f) · (f, d) · (d, f) · (f, d), compiled with the same CPU plugin
settings as the embedder (latency hint, the same inference precision); int8 is that model quantised by NNCF
(int8 activations and weights, as the `openvino-int8` backend). Figures are per CPU-second of this process, the
steadiest measure on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from embed_bench import DEFAULT_DIR, doc_text, load_corpus, make_embedder  # noqa: E402

#: Embedder variant (of embed_bench.VARIANTS) → the OpenVINO inference precision its matmul peak is measured in.
PEAK_PRECISION = {"openvino-fp32": "f32", "openvino-bf16": "bf16", "openvino-bf16-f32-out": "bf16",
                  "openvino-int8": "int8"}
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def model_shape(model_path: str) -> dict:
    config = json.loads((Path(model_path) / "config.json").read_text())
    return {"layers": config["num_hidden_layers"], "hidden": config["hidden_size"],
            "ffn": config["intermediate_size"]}


def flops_per_token(shape: dict, padded_length: int) -> float:
    """L · (8d² + 4df + 4nd): see the module docstring."""
    d, f, n = shape["hidden"], shape["ffn"], padded_length
    return shape["layers"] * (8 * d * d + 4 * d * f + 4 * n * d)


class CountingRunner:
    """Wraps the embedder's runner to add up the FLOPs of the padded batches it runs."""

    def __init__(self, inner, shape: dict):
        self.inner, self.shape = inner, shape
        self.input_names = inner.input_names
        self.flops = 0.0

    def __call__(self, feed):
        rows, length = feed["input_ids"].shape
        self.flops += rows * length * flops_per_token(self.shape, length)
        return self.inner(feed)


def embedder_flops(variant: str, texts: list[str], shape: dict, reps: int, cache_dir: str, threads: int) -> dict:
    embedder = make_embedder(variant, cache_dir, threads)
    embedder.embed(texts[:4])  # load, convert or calibrate once, warm up
    counter = CountingRunner(embedder._runner, shape)
    embedder._runner = counter
    best = float("inf")
    for _ in range(reps):
        counter.flops = 0.0
        c0 = time.process_time()
        embedder.embed(texts)
        best = min(best, time.process_time() - c0)
    return {"flops_per_cpu_s": counter.flops / best, "cpu_s": best, "describe": embedder.describe()}


def matmul_model(rows: int, d: int, f: int, precision: str):
    """(rows, d) through MatMuls with weights (d, f), (f, d), (d, f), (f, d); int8: quantised by NNCF."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([rows, d], ov.Type.f32, name="x")
    out = x
    for k, n in ((d, f), (f, d), (d, f), (f, d)):
        weight = ops.constant((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32))
        out = ops.matmul(out, weight, False, False)
    model = ov.Model([out], [x], "matmul_chain")
    flops = 2.0 * rows * (d * f + f * d + d * f + f * d)
    if precision == "int8":
        import nncf

        samples = [rng.standard_normal((rows, d)).astype(np.float32) for _ in range(4)]
        model = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples))
    return model, flops


def matmul_flops(rows: int, d: int, f: int, precision: str, reps: int, threads: int) -> float:
    import openvino as ov

    model, flops = matmul_model(rows, d, f, precision)
    from rag_app.components.device import cpu_has_fast_bf16

    # As the embedder: int8 runs what NNCF leaves unquantised in bf16 where the CPU is fast at it.
    between = "bf16" if cpu_has_fast_bf16() else "f32"
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": between if precision == "int8" else precision}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    x = np.random.default_rng(1).standard_normal((rows, d)).astype(np.float32)
    request.infer({0: x})  # warm up
    calls = 0
    c0 = time.process_time()
    while calls < 5 or time.process_time() - c0 < 2.0 * reps:  # ~2 CPU-s per rep
        request.infer({0: x})
        calls += 1
    return flops * calls / (time.process_time() - c0)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR, help="folder with corpus.jsonl")
    parser.add_argument("--limit", type=int, default=256, help="abstracts to embed per variant")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variants", default=",".join(PEAK_PRECISION), help=", ".join(PEAK_PRECISION))
    parser.add_argument("--rows", type=int, default=4096, help="rows of the matmul benchmark (tokens of a batch)")
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0: runtime default)")
    parser.add_argument("--cache-dir", default=None, help="where exports are cached (default: a temp folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import tempfile

    from rag_app.components.packaged_models import packaged_embedder_path

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(PEAK_PRECISION)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}: use {', '.join(PEAK_PRECISION)}")
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    flags = cpu_flags()
    print(f"CPU: {model_name}, {os.cpu_count()} CPUs; flags of interest: "
          f"{' '.join(f for f in FLAGS_OF_INTEREST if f in flags)} (absent: "
          f"{' '.join(f for f in FLAGS_OF_INTEREST if f not in flags) or '-'})")
    print("lscpu flags:", " ".join(sorted(flags)))
    shape = model_shape(packaged_embedder_path())
    print(f"model: {shape}; FLOPs/token = L(8d² + 4df + 4nd) = {flops_per_token(shape, 0) / 1e6:.2f} MFLOP + "
          f"{flops_per_token(shape, 1) - flops_per_token(shape, 0):.0f} FLOP · n "
          f"({flops_per_token(shape, 256) / 1e6:.2f} MFLOP at n = 256)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="flops-bench-")
    texts = [doc_text(d) for d in load_corpus(args.data / "corpus.jsonl", args.limit)]
    rows = []
    for variant in variants:
        precision = PEAK_PRECISION[variant]
        emb = embedder_flops(variant, texts, shape, args.reps, cache_dir, args.threads)
        peak = matmul_flops(args.rows, shape["hidden"], shape["ffn"], precision, args.reps, args.threads)
        rows.append((variant, precision, emb, peak))
        print(f"{variant}: embedder {emb['flops_per_cpu_s'] / 1e9:.1f} GFLOP/cpu-s ({emb['describe']['precision']}), "
              f"matmul {peak / 1e9:.1f} GFLOP/cpu-s", flush=True)

    print(f"\n{len(texts)} SciFact abstracts, best of {args.reps}; matmul chain ({args.rows}, {shape['hidden']}) × "
          f"({shape['hidden']}, {shape['ffn']}) …, OpenVINO CPU plugin, latency hint")
    print(f"{'variant':14s} {'precision':9s} {'embedder GFLOP/cpu-s':>20s} {'matmul GFLOP/cpu-s':>18s} "
          f"{'embedder / matmul':>17s}")
    for variant, precision, emb, peak in rows:
        print(f"{variant:14s} {precision:9s} {emb['flops_per_cpu_s'] / 1e9:20.1f} {peak / 1e9:18.1f} "
              f"{emb['flops_per_cpu_s'] / peak:16.0%}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
