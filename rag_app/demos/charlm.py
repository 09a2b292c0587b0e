"""A tiny character-level autoregressive transformer (a miniature GPT) trained on the bundled corpus text.

Read top to bottom: config and presets, the data (every `*.md` under `<repo>/corpus/`, as characters), the
network (causal self-attention blocks, in the manner of nanoGPT), the process (next-character prediction and
temperature sampling), the loop (train, sample, evaluate) and the run. It writes text, not images: samples.png
is a rendering of generated passages, and the metrics are held-out bits per character and characters/second.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rag_app.demos import output

NAME = "charlm"


@dataclass
class Config:
    block_size: int = 64  # context length in characters
    n_layer: int = 2  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 64  # embedding width
    dropout: float = 0.0  # dropout in attention and MLP (the tiny model underfits; none needed)
    steps: int = 1000  # optimiser steps
    max_seconds: float | None = 30.0  # wall-clock cap on training (None: none); whichever of the two comes first
    batch_size: int = 16  # sequences per step
    lr: float = 3e-3  # AdamW learning rate, cosine-decayed to 10% of it over the budget (steps or seconds)
    heldout_fraction: float = 0.1  # the last 10% of the corpus text is held out for bits per char
    sample_chars: int = 300  # characters generated per sample
    n_text_samples: int = 4  # passages rendered into samples.png
    temperature: float = 0.8  # sampling temperature (< 1: safer, more repetitive text)
    seed: int = 0  # seeds torch, numpy and the batch order
    corpus_dir: str | None = None  # folder of *.md files; None: <repo>/corpus


PRESETS = {
    "tiny": Config(),
    "full": Config(n_layer=3, n_embd=96, steps=2000, lr=2e-3, max_seconds=None),  # no time cap: stops by steps
}
PROMPTS = ("# ", "A generative model", "The ", "\n")  # one prompt per rendered sample (cycled)


# ----------------------------------------------------------------------------- data


def corpus_path(cfg: Config) -> Path:
    import rag_app

    return Path(cfg.corpus_dir) if cfg.corpus_dir else Path(rag_app.__file__).resolve().parents[1] / "corpus"


def load_text(cfg: Config) -> str:
    """All *.md files under the corpus folder, in sorted path order, joined by blank lines.

    Raises:
        RagError: the folder holds no markdown.
    """
    files = sorted(corpus_path(cfg).rglob("*.md"))
    if not files:
        from rag_app.errors import RagError

        raise RagError(f"no *.md files under {corpus_path(cfg)}: the char-LM demo trains on the bundled corpus")
    return "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


class CharCodec:
    """Characters <-> integer ids over the vocabulary (every distinct character of the corpus)."""

    def __init__(self, vocab: str):
        self.vocab = vocab
        self.index = {ch: i for i, ch in enumerate(vocab)}

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.index[ch] for ch in text if ch in self.index], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.vocab[i] for i in ids)


def split(cfg: Config, text: str | None = None) -> tuple[CharCodec, torch.Tensor, torch.Tensor]:
    """(codec, train ids, held-out ids): the held-out part is the tail of the text, not a random sample.

    Pass the text read once per run: the corpus may change while a run trains (pages being added).
    """
    text = load_text(cfg) if text is None else text
    codec = CharCodec("".join(sorted(set(text))))
    ids = codec.encode(text)
    cut = int(len(ids) * (1 - cfg.heldout_fraction))
    return codec, ids[:cut], ids[cut:]


# ----------------------------------------------------------------------------- network


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.n_head, self.dropout = cfg.n_head, cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.n_embd), CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, cfg: Config, vocab_size: int):
        super().__init__()
        self.block_size = cfg.block_size
        self.tok = nn.Embedding(vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> next-character logits (B, T, vocab)."""
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, vocab)


# ----------------------------------------------------------------------------- process


def next_char_loss(model: CharTransformer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the targets y (B, T) (x shifted by one) under the model, in nats per character."""
    logits = model(x)  # (B, T, vocab)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def generate(model: CharTransformer, idx: torch.Tensor, n_new: int, temperature: float,
             generator: torch.Generator) -> torch.Tensor:
    """Extend idx (1, T0) by n_new characters, each drawn from softmax(logits / temperature)."""
    for _ in range(n_new):
        context = idx[:, -model.block_size :]  # (1, <= block_size)
        logits = model(context)[:, -1] / temperature  # (1, vocab)
        probs = logits.softmax(dim=-1).cpu()
        nxt = torch.multinomial(probs, 1, generator=generator).to(idx.device)  # (1, 1)
        idx = torch.cat([idx, nxt], dim=1)
    return idx


# ----------------------------------------------------------------------------- loop


def cosine_lr(lr: float, fraction: float, final: float = 0.1) -> float:  # same as diffusion.py
    """Cosine decay from lr at fraction 0 to final * lr at fraction 1 (the share of the training budget used)."""
    return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * fraction)))


def random_windows(ids: torch.Tensor, cfg: Config, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random windows x (B, T) and their one-step-shifted targets y (B, T)."""
    starts = torch.randint(0, len(ids) - cfg.block_size - 1, (cfg.batch_size,), generator=gen)
    x = torch.stack([ids[s : s + cfg.block_size] for s in starts.tolist()])
    y = torch.stack([ids[s + 1 : s + 1 + cfg.block_size] for s in starts.tolist()])
    return x, y


def train(cfg: Config, device: str = "cpu", progress: Callable[[int, int, dict], None] | None = None,
          text: str | None = None) -> tuple[CharTransformer, CharCodec, list[float]]:
    """Next-character prediction on the training text, for cfg.steps or cfg.max_seconds;
    returns (model, codec, per-step losses in bits per char)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    codec, train_ids, _ = split(cfg, text)
    model = CharTransformer(cfg, len(codec.vocab)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    losses = []
    budget = output.Budget(cfg.steps, cfg.max_seconds, progress)
    for _ in budget:  # stops after cfg.steps steps or cfg.max_seconds seconds, whichever comes first
        for group in opt.param_groups:  # the decay follows whichever limit is nearer, so it ends on time
            group["lr"] = cosine_lr(cfg.lr, budget.fraction())
        x, y = random_windows(train_ids, cfg, gen)
        loss = next_char_loss(model, x.to(device), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item() / math.log(2))
        budget.report({"loss": losses[-1]})
    return model.eval(), codec, losses


@torch.no_grad()
def sample(model: CharTransformer, codec: CharCodec, cfg: Config, prompt: str, seed: int = 0) -> str:
    """Continue `prompt` by cfg.sample_chars characters."""
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    idx = codec.encode(prompt)[None].to(device)  # (1, T0)
    if idx.shape[1] == 0:
        idx = codec.encode("\n")[None].to(device)
    return codec.decode(generate(model, idx, cfg.sample_chars, cfg.temperature, gen)[0].tolist())


@torch.no_grad()
def heldout_bits_per_char(model: CharTransformer, heldout_ids: torch.Tensor, cfg: Config, max_windows: int = 64) -> float:
    """Mean next-character loss on non-overlapping held-out windows, in bits per character."""
    device = next(model.parameters()).device
    n = min(max_windows, (len(heldout_ids) - 1) // cfg.block_size)
    if n < 1:
        return float("nan")
    starts = [i * cfg.block_size for i in range(n)]
    x = torch.stack([heldout_ids[s : s + cfg.block_size] for s in starts]).to(device)  # (n, T)
    y = torch.stack([heldout_ids[s + 1 : s + 1 + cfg.block_size] for s in starts]).to(device)
    return next_char_loss(model, x, y).item() / math.log(2)


def unigram_bits_per_char(train_ids: torch.Tensor, heldout_ids: torch.Tensor, vocab_size: int) -> float:
    """Reference: held-out cross-entropy of character frequencies alone (add-one smoothed), no context."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1
    logp = (counts / counts.sum()).log2()
    return float(-logp[heldout_ids].mean())


def evaluate(model: CharTransformer, codec: CharCodec, cfg: Config, text: str | None = None) -> tuple[dict, list[str]]:
    _, train_ids, heldout_ids = split(cfg, text)
    texts = []
    start = time.perf_counter()
    for i in range(cfg.n_text_samples):
        texts.append(sample(model, codec, cfg, PROMPTS[i % len(PROMPTS)], seed=cfg.seed + i))
    speed = cfg.n_text_samples * cfg.sample_chars / (time.perf_counter() - start)
    result = {
        "heldout_bits_per_char": round(heldout_bits_per_char(model, heldout_ids, cfg), 4),
        "reference_unigram_bits_per_char": round(unigram_bits_per_char(train_ids, heldout_ids, len(codec.vocab)), 4),
        "reference_uniform_bits_per_char": round(math.log2(len(codec.vocab)), 4),
        "chars_per_s": round(speed, 1),
        "vocab_size": len(codec.vocab),
        "train_chars": len(train_ids),
    }
    return result, texts


def load_checkpoint(out_dir: str | Path, device: str = "cpu") -> tuple[CharTransformer, CharCodec, Config]:
    """Rebuild the model and its vocabulary from a finished run's model.safetensors and config.json.

    Same as vae.py, plus the vocabulary that config.json keeps beside the config.
    """
    state, description = output.read_run(Path(out_dir), NAME)
    cfg = Config(**description["config"])
    codec = CharCodec(description["vocab"])
    model = CharTransformer(cfg, len(codec.vocab))
    model.load_state_dict(state)
    return model.to(device).eval(), codec, cfg


# same as vae.py, with text samples (cache_dir is unused: no digit scorer for text)
def run(cfg: Config, out_dir: Path, preset: str, device: str = "cpu",
        progress: Callable[[int, int, dict], None] | None = None,
        cache_dir: Path | None = None) -> tuple[dict, dict[str, Path]]:
    """Train, evaluate, and write samples.png (rendered text), curve.png, metrics.json, model.safetensors, config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    text = load_text(cfg)  # read once: train and evaluate must see the same characters
    model, codec, losses = train(cfg, device, progress, text)
    train_s = time.perf_counter() - start
    scores, texts = evaluate(model, codec, cfg, text)
    result = {**output.budget_summary(cfg, len(losses), train_s), "final_loss": round(float(np.mean(losses[-50:])), 4),
              **scores}
    output.save_text_image(texts, out_dir / "samples.png")
    (out_dir / "samples.txt").write_text("\n\n".join(f"--- sample {i + 1} ---\n{t}" for i, t in enumerate(texts)) + "\n")
    output.save_curve({"train loss (bits / char)": losses}, out_dir / "curve.png", "char-LM training",
                      ylabel="bits / char")
    files = output.save_run(out_dir, NAME, preset, cfg, len(losses), model.state_dict(), result,
                            extra={"vocab": codec.vocab})
    return result, files
