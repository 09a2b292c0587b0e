"""`rag train-reader`: fine-tune the LM as the answer service's span reader with LoRA (peft), seeded and resumable.

    config = ReaderTrainConfig(data=[Path("../shared/train")], out=Path("runs/reader"))
    card = train_reader(config, settings)        # -> the card (also runs/reader/adapter/reader_card.json)

The run folder holds what a later run needs to go on: `examples.jsonl` (built once; the build is deterministic for
the seed), `checkpoint/` (adapter weights, AdamW moments and the step, as safetensors + JSON, no pickles; written
atomically every `checkpoint_every` steps) and finally `adapter/` (peft's `adapter_model.safetensors` and
`adapter_config.json`, and `reader_card.json`: base model and its hash, data and counts, steps, seed, dev figures).
A run killed at any point and started again with the same command continues from its last checkpoint and ends
with the same adapter as one that was never stopped (data order and dropout are functions of the seed and step).

The loss is the reply's tokens only (the span or `NO_ANSWER`, then the end of turn), computed from the LM head at
those positions alone: the prompt is most of each example, and its vocabulary logits are never needed.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag_app.errors import RagError
from rag_app.services.prompting import NO_ANSWER, Passage, reader_messages
from rag_app.training.data import (
    ReaderExample,
    build_examples,
    load_examples,
    load_items,
    save_examples,
    split_by_group,
)

CARD_NAME = "reader_card.json"
SPAN_PREFIX = "Answer:"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class ReaderTrainConfig:
    data: list[Path]  # folders laid out as ../shared/train, or JSON-lines files of one's own pairs
    out: Path  # the run folder (examples, checkpoints, the adapter)
    base: str = ""  # the LM to adapt (default: settings.llm.model)
    seed: int = 0
    epochs: float = 1.0
    max_examples: int | None = None  # cap on training examples (a seeded sample), for a quicker run
    learning_rate: float = 3e-4
    warmup_steps: int = 20
    rank: int = 16  # LoRA rank, on every linear layer of the top `top_layers` decoder layers
    top_layers: int | None = 15  # None: every layer. The top half of SmolLM2's 30 at rank 16: 2.4M weights (4.9 MB
    # in bf16); the layers below run without autograd, so a step costs about 0.55 of adapting every layer
    alpha: int = 32
    dropout: float = 0.05
    batch_size: int = 8  # examples per forward pass
    accumulate: int = 2  # passes per optimizer step
    max_prompt_tokens: int = 448  # longer prompts are cut from the left (the evidence's start)
    dev_share: float = 0.05  # whole groups (articles, papers) held out for the card's dev figures
    checkpoint_every: int = 25  # optimizer steps
    negatives: float = 0.25  # see `build_examples`
    perturbed: float = 0.4  # share of answerable questions that also give a perturbed one (see `perturb`)
    removed: float = 0.0  # "answer removed" negatives (see `build_examples`): 0.5 measured no better, not shipped
    dtype: str = "auto"  # auto: bf16 on CUDA and on CPUs with fast bf16, else fp32
    device: str = "auto"
    stop_after_steps: int | None = None  # stop (checkpointed) after this step: a run spread over several sessions


@dataclass
class _Encoded:
    ids: list[int]
    reply_start: int  # index of the reply's first token (after the "Answer:" prefix)


# -- the prompt, exactly as the service renders it --------------------------------------------------------------------
def example_messages(example: ReaderExample) -> list[dict]:
    passages = [Passage(n, text, example.titles.get(n, "")) for n, text in example.evidence]
    return reader_messages(example.question, passages)


def encode(example: ReaderExample, tokenizer, end_id: int, max_prompt_tokens: int) -> _Encoded:
    """Prompt tokens (the chat template with the generation prompt and "Answer:", as `TransformersLLM.render`), then
    the reply: " " + target, then the end of turn."""
    prompt = tokenizer.apply_chat_template(example_messages(example), tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt + SPAN_PREFIX, add_special_tokens=False)["input_ids"][-max_prompt_tokens:]
    reply = tokenizer(" " + example.target, add_special_tokens=False)["input_ids"] + [end_id]
    return _Encoded(list(prompt_ids) + list(reply), len(prompt_ids))


def end_of_turn_id(tokenizer) -> int:
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
            return tid
    if tokenizer.eos_token_id is None:
        raise RagError("the LM's tokenizer has no end-of-turn or end-of-text token to end the reader's reply")
    return int(tokenizer.eos_token_id)


def batches(order: Sequence[int], lengths: Sequence[int], size: int, window: int = 64) -> list[list[int]]:
    """Micro-batches of `size` in the given order, sorted by length inside windows of `window` examples (less
    padding, the same examples per window)."""
    out = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        out += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    return out


# -- the run ----------------------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _examples(config: ReaderTrainConfig, settings, log: Callable[[str], None]) -> tuple[list[ReaderExample], dict]:
    """The run's examples: read from the run folder when built before with the same recipe, else built and saved."""
    from rag_app.components.embedder import get_embedder

    recipe = {"data": [str(p) for p in config.data], "seed": config.seed, "negatives": config.negatives,
              "perturbed": config.perturbed, "removed": config.removed, "embedder": settings.embedder.model,
              "sentence_weights": list(settings.answer.sentence_weights),
              "evidence_sentences": settings.answer.evidence_sentences,
              "evidence_margin": settings.answer.evidence_margin}
    path, meta_path = config.out / "examples.jsonl", config.out / "examples.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("recipe") == recipe and meta.get("sha256") == sha256_file(path):
            return load_examples(path), meta
    items = load_items(config.data)
    if not items:
        raise RagError("the training data holds no usable question (extractive answers of at most 8 words, or "
                       "unanswerable)")
    log(f"building reader examples from {len(items)} questions (ranking their evidence with the embedder)")
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc="examples", unit="q", file=sys.stderr)
    examples = build_examples(items, get_embedder(settings),
                              sentence_weights=_weights(settings), evidence_sentences=recipe["evidence_sentences"],
                              evidence_margin=recipe["evidence_margin"], seed=config.seed,
                              negatives=config.negatives, perturbed=config.perturbed, removed=config.removed,
                              progress=lambda i: bar.update(1))
    bar.close()
    digest = save_examples(examples, path)
    meta = {"recipe": recipe, "sha256": digest,
            "data_files": {str(f): sha256_file(f) for p in config.data
                           for f in ([p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file()))
                           if f.suffix in {".gz", ".json", ".jsonl"}},
            "items": len(items), "by_source": dict(Counter(i.source for i in items))}
    meta_path.write_text(json.dumps(meta, indent=1))
    return examples, meta


def _weights(settings):
    from rag_app.services.grounding import SentenceWeights

    return SentenceWeights(*settings.answer.sentence_weights)


def _base_path(base: str, settings) -> Path | str:
    if base.startswith("packaged:"):
        from rag_app.components.packaged_models import converted_packaged_model

        return converted_packaged_model(settings.cache_dir, ref=base)
    return base


def train_reader(config: ReaderTrainConfig, settings, log: Callable[[str], None] = print) -> dict:
    """Train (or resume) the reader adapter described by `config`; returns its card."""
    try:
        import peft
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise RagError(f"training the reader needs torch, transformers and peft ({exc}): pip install peft") from exc
    from tqdm import tqdm

    from rag_app.components.device import resolve_device, resolve_dtype

    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    base = config.base or settings.llm.model
    examples, data_meta = _examples(config, settings, log)
    train, dev = split_by_group(examples, config.dev_share, config.seed)
    if config.max_examples and len(train) > config.max_examples:
        train = random.Random(config.seed).sample(train, config.max_examples)
    if not train:
        raise RagError("no training examples are left after holding out the dev groups: give more data")
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    path = _base_path(base, settings)
    offline = settings.offline
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=offline)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    end_id = end_of_turn_id(tokenizer)
    encoded = [encode(e, tokenizer, end_id, config.max_prompt_tokens) for e in train]
    dev_encoded = [encode(e, tokenizer, end_id, config.max_prompt_tokens) for e in dev]
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False,
                                                 local_files_only=offline).to(device)
    layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    top = list(range(max(0, layers - config.top_layers), layers)) if config.top_layers and layers else None
    lora = peft.LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                           target_modules=list(LORA_TARGETS), layers_to_transform=top, task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lora)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for _, p in named], lr=config.learning_rate, weight_decay=0.0)
    # The data order: one seeded permutation per epoch, cut to the run's length.
    per_epoch = len(encoded)
    total_examples = math.ceil(config.epochs * per_epoch)
    order: list[int] = []
    for epoch in range(math.ceil(config.epochs)):
        perm = list(range(per_epoch))
        random.Random(config.seed * 1000 + epoch).shuffle(perm)
        order += perm
    order = order[:total_examples]
    micro = batches(order, [len(e.ids) for e in encoded], config.batch_size)
    steps = math.ceil(len(micro) / config.accumulate)
    schedule = _schedule(config.learning_rate, config.warmup_steps, steps)
    checkpoint = config.out / "checkpoint"
    step = _load_checkpoint(checkpoint, model, optimizer, named, config) if checkpoint.is_dir() else 0
    if step:
        log(f"resuming at step {step} of {steps} from {checkpoint}")
    # The reply loss on a fixed sample of training examples, before and after: the card's evidence that it learnt.
    probe = [encoded[i] for i in sorted(random.Random(config.seed).sample(range(len(encoded)), min(64, len(encoded))))]
    model.eval()
    loss_before = evaluate_encoded(model, probe, [False] * len(probe), pad_id, device)["loss"] if not step else None
    model.train()
    tokens_seen, losses = 0, []
    bar = tqdm(total=steps, initial=step, desc="train-reader", unit="step", file=sys.stderr)
    loop_started = time.perf_counter()
    last = min(steps, config.stop_after_steps) if config.stop_after_steps else steps
    for current in range(step, last):
        torch.manual_seed(config.seed * 100_003 + current)  # dropout: a function of the step, so resuming is exact
        for group in micro[current * config.accumulate:(current + 1) * config.accumulate]:
            loss, count = _batch_loss(model, [encoded[i] for i in group], pad_id, device)
            (loss / config.accumulate).backward()
            tokens_seen += count
            losses.append(float(loss.detach()))
        for group in optimizer.param_groups:
            group["lr"] = schedule(current)
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - loop_started
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", tok_s=f"{tokens_seen / elapsed:.0f}")
        bar.update(1)
        if (current + 1) % config.checkpoint_every == 0 or current + 1 == last:
            _save_checkpoint(checkpoint, model, optimizer, named, current + 1)
    bar.close()
    if last < steps:
        log(f"stopped after step {last} of {steps}; run the same command again to go on from {checkpoint}")
        return {"stopped_at_step": last, "steps": steps}
    train_seconds = time.perf_counter() - loop_started
    model.eval()
    loss_after = evaluate_encoded(model, probe, [False] * len(probe), pad_id, device)["loss"]
    dev_figures = evaluate_encoded(model, dev_encoded, [e.target == NO_ANSWER for e in dev], pad_id, device)
    adapter = config.out / "adapter"
    tmp = config.out / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "README.md").unlink(missing_ok=True)
    _to_bfloat16(tmp / "adapter_model.safetensors")
    base_hash = sha256_file(Path(path) / "model.safetensors") if (Path(path) / "model.safetensors").is_file() else ""
    card = {
        "kind": "span-reader",
        "base_model": base,
        "base_model_sha256": base_hash,
        "prompt": {"system": reader_messages("", [])[0]["content"], "prefix": SPAN_PREFIX, "no_answer": NO_ANSWER},
        "lora": {"rank": config.rank, "alpha": config.alpha, "dropout": config.dropout, "targets": list(LORA_TARGETS),
                 "layers": top},
        "training": {"seed": config.seed, "epochs": config.epochs, "steps": steps, "batch_size": config.batch_size,
                     "accumulate": config.accumulate, "learning_rate": config.learning_rate,
                     "warmup_steps": config.warmup_steps, "max_prompt_tokens": config.max_prompt_tokens,
                     "examples": len(train), "dev_examples": len(dev),
                     "by_kind": dict(Counter(e.kind for e in train)),
                     "by_source": dict(Counter(e.source for e in train)),
                     "dtype": str(dtype).removeprefix("torch."), "device": device,
                     "tokens_per_s": round(tokens_seen / train_seconds, 1) if tokens_seen and train_seconds else None,
                     "train_seconds_this_run": round(train_seconds, 1),
                     "wall_seconds_this_run": round(time.perf_counter() - started, 1),
                     "resumed_at_step": step,
                     # reply-token loss on 64 training examples before training (None when resumed) and after
                     "loss_before": loss_before, "loss_after": loss_after, "cpu": platform.processor() or platform.machine()},
        "data": data_meta,
        "dev": dev_figures,
        "commit": _git_commit(),
        "command": " ".join(["rag", "train-reader"] + sys.argv[2:]) if sys.argv[1:2] == ["train-reader"] else "",
    }
    previous = config.out / "adapter" / CARD_NAME
    if previous.is_file():  # the fits written by `bench/reader_calibrate.py` stay with the same weights
        old = json.loads(previous.read_text())
        if old.get("adapter_sha256") == sha256_file(tmp / "adapter_model.safetensors"):
            card.update({key: old[key] for key in ("decision", "reading") if key in old})
    card["adapter_sha256"] = sha256_file(tmp / "adapter_model.safetensors")
    (tmp / CARD_NAME).write_text(json.dumps(card, indent=1, sort_keys=True))
    shutil.rmtree(adapter, ignore_errors=True)
    tmp.rename(adapter)
    log(f"adapter written to {adapter} ({steps} steps, {card['training']['tokens_per_s']} tokens/s)")
    return card


def _to_bfloat16(path: Path) -> None:
    """Store the adapter's weights in bf16: half the size, and the LoRA update is small beside the base weights."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def _schedule(peak: float, warmup: int, steps: int) -> Callable[[int], float]:
    def rate(step: int) -> float:
        if step < warmup:
            return peak * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return rate


def padded_width(batch: Sequence[_Encoded], multiple: int = 32) -> int:
    """The batch's length rounded up to a multiple of 32: a handful of tensor shapes in all. On CPUs every new shape
    costs the kernels' setup and memory that stays (oneDNN caches per shape; 30 shapes held ~14 GB in bf16)."""
    longest = max(len(e.ids) for e in batch)
    return -(-longest // multiple) * multiple


def _batch_loss(model, batch: Sequence[_Encoded], pad_id: int, device):
    """Mean cross-entropy of the replies' tokens; the LM head runs only where a reply token is predicted."""
    import torch

    width = padded_width(batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets = [], [], []
    for r, e in enumerate(batch):
        ids[r, :len(e.ids)] = torch.tensor(e.ids)
        mask[r, :len(e.ids)] = 1
        for position in range(e.reply_start, len(e.ids)):
            rows.append(r)
            cols.append(position - 1)  # the position whose output predicts this token
            targets.append(e.ids[position])
    inner = model.get_base_model()
    hidden = inner.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
    logits = inner.lm_head(picked).float()
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets, device=device))
    return loss, int(mask.sum())


def evaluate_encoded(model, encoded: Sequence[_Encoded], abstain: Sequence[bool], pad_id: int, device,
                     batch_size: int = 16) -> dict:
    """Dev figures: reply-token loss and the share of replies whose every token is the model's first choice
    (teacher-forced), over all, answerable and no-answer examples."""
    import torch

    if not encoded:
        return {}
    exact, losses = [], []
    inner = model.get_base_model()
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start:start + batch_size]
            width = padded_width(batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, e in enumerate(batch):
                ids[r, :len(e.ids)] = torch.tensor(e.ids)
                mask[r, :len(e.ids)] = 1
            hidden = inner.model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            for r, e in enumerate(batch):
                positions = torch.arange(e.reply_start - 1, len(e.ids) - 1, device=device)
                logits = inner.lm_head(hidden[r, positions]).float()
                target = torch.tensor(e.ids[e.reply_start:], device=device)
                losses.append(float(torch.nn.functional.cross_entropy(logits, target)))
                exact.append(bool((logits.argmax(-1) == target).all()))

    def share(select: Callable[[int], bool]) -> float | None:
        chosen = [exact[i] for i in range(len(exact)) if select(i)]
        return round(100.0 * sum(chosen) / len(chosen), 2) if chosen else None

    return {"examples": len(encoded), "loss": round(sum(losses) / len(losses), 4),
            "exact_reply": share(lambda i: True), "exact_span": share(lambda i: not abstain[i]),
            "exact_no_answer": share(lambda i: abstain[i])}


# -- checkpoints: safetensors and JSON only ---------------------------------------------------------------------------
def _save_checkpoint(folder: Path, model, optimizer, named, step: int) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for name, param in named:
        tensors[f"param/{name}"] = param.detach().contiguous().cpu()
        state = optimizer.state.get(param) or {}
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                tensors[f"{key}/{name}"] = state[key].contiguous().cpu()
    adam_steps = {name: float(optimizer.state[param]["step"]) for name, param in named
                  if param in optimizer.state and "step" in optimizer.state[param]}
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "adam_steps": adam_steps}))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(folder: Path, model, optimizer, named, config) -> int:
    import torch
    from safetensors.torch import load_file

    if not (folder / "state.json").is_file():
        return 0
    meta = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "state.safetensors"))
    with torch.no_grad():
        for name, param in named:
            param.copy_(tensors[f"param/{name}"].to(param.device, param.dtype))
            if f"exp_avg/{name}" in tensors:
                optimizer.state[param] = {
                    "step": torch.tensor(meta["adam_steps"][name]),
                    "exp_avg": tensors[f"exp_avg/{name}"].to(param.device),
                    "exp_avg_sq": tensors[f"exp_avg_sq/{name}"].to(param.device),
                }
    return int(meta["step"])
