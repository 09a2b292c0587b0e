"""The local LM: a Hugging Face causal LM (by default the packaged SmolLM2-135M-Instruct, converted once from GGUF
to a cached safetensors folder by `rag_app.components.packaged_models`), loaded on first use.

Decoding runs in our own loop with a KV cache: tokens stream without a thread, and a caller may pick every token
itself from the model's logits (`decode`). `continuations` scores candidate replies in one batched pass. The trained
reader's LoRA adapter, when set, is merged into the weights on load.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rag_app.components.llm.base import LLM, Continuations, Message, render_plain
from rag_app.components.llm.streaming import StopStreamer
from rag_app.components.packaged_models import converted_packaged_model
from rag_app.errors import RagError
from rag_app.settings import LLMSettings


@functools.cache
def _cache_argument(model_class) -> str:
    """The name transformers gives the KV-cache argument: `cache` from 5.x on, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


@functools.cache
def _keeps_last_logits(model_class) -> bool:
    """Whether the model can compute the logits of the last position only (`logits_to_keep`)."""
    import inspect

    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


#: Multi-token passes (prompts, scored candidates) are right-padded to a multiple of this many tokens. The CPU
#: kernels keep state per input shape that is never freed (oneDNN's matmul primitives, the BRGEMM kernels of
#: torch's bf16 flash attention: ~3 MB for each new prompt length on an AMX Xeon), so a server asked distinct
#: questions grew without end; with lengths bucketed the shapes repeat. Padding at the end changes nothing before
#: it under a causal mask, and costs at most BUCKET - 1 tokens of compute per pass.
LENGTH_BUCKET = 32


def padded_length(n: int) -> int:
    """`n` rounded up to the next multiple of `LENGTH_BUCKET` (1 stays 1: decoding steps are one shape already)."""
    return n if n <= 1 else -(-n // LENGTH_BUCKET) * LENGTH_BUCKET


def forward_cached(model, input_ids, cache):
    """One forward pass that extends `cache` (None: a new one) by `input_ids`; returns (logits of the last input
    position, shape (1, 1, V), cache). Only that row of logits is computed where the model allows it: over a
    1,500-token prompt the full logits are 1,500 x the vocabulary (~300 MB in fp32 for SmolLM2), of which every
    caller reads one row. The pass runs right-padded to `padded_length` (see `LENGTH_BUCKET`) and the padding is
    cut from the cache after, so the result is that of the unpadded pass."""
    import torch

    name = _cache_argument(type(model))
    kwargs = {name: cache} if cache is not None else {}
    n = input_ids.shape[1]
    pad = padded_length(n) - n
    if pad:
        filler = torch.full((input_ids.shape[0], pad), int(input_ids[0, -1]), dtype=input_ids.dtype,
                            device=input_ids.device)
        input_ids = torch.cat([input_ids, filler], dim=1)
    keeps_one_row = _keeps_last_logits(type(model))
    if keeps_one_row:
        kwargs["logits_to_keep"] = torch.tensor([n - 1], device=input_ids.device) if pad else 1
    out = model(input_ids=input_ids, use_cache=True, **kwargs)
    cache = getattr(out, name)
    if pad:
        cache.crop(-pad)  # negative: drop the last `pad` tokens
    return (out.logits if keeps_one_row else out.logits[:, n - 1:n]), cache


class TransformersLLM(LLM):
    """A local Hugging Face causal LM, loaded on first use; greedy/sampled decoding in a KV-cached loop.

    `offline` loads with `local_files_only`, so a hub id is never fetched, whatever the environment says.
    """

    exposes_logits = True

    def __init__(self, model: str, cache_dir: Path, device: str = "auto", dtype: str = "auto",
                 load_in_4bit: bool = False, context_tokens: int | None = None, offline: bool = True,
                 adapter: str = "none"):
        from rag_app.components.reader_adapter import resolve_adapter

        self.model_ref = model
        # The trained reader's adapter (merged into the weights on load) and its card, or None.
        self.reader = resolve_adapter(adapter, model)
        self.offline = offline
        self.cache_dir = cache_dir
        self.requested_device = device
        self.requested_dtype = dtype
        self.load_in_4bit = load_in_4bit
        self.name = model.removeprefix("packaged:") if model.startswith("packaged:") else model.rstrip("/")
        if self.reader is not None:
            self.name += "+" + self.reader.tag
        self._context_tokens = context_tokens
        self._model = None
        self._tokenizer = None
        self._lock = threading.RLock()  # one model shared by threads; generation is serialised
        self._prefix_cache: dict[str, tuple] = {}  # rendered head -> (tokens, KV cache), see `_head`

    @classmethod
    def from_settings(cls, llm: LLMSettings, *, device: str, cache_dir: Path, offline: bool) -> TransformersLLM:
        return cls(llm.model, cache_dir, device, llm.dtype, llm.load_in_4bit, llm.context_tokens, offline=offline,
                   adapter=llm.adapter)

    # -- loading ---------------------------------------------------------------------------------------------------
    def _load(self):
        if self._model is not None:
            return self._model, self._tokenizer
        with self._lock:
            if self._model is not None:
                return self._model, self._tokenizer
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from rag_app.components.device import resolve_device, resolve_dtype

            device = resolve_device(self.requested_device)
            packaged = self.model_ref.startswith("packaged:")
            path = converted_packaged_model(self.cache_dir, ref=self.model_ref) if packaged else self.model_ref
            kwargs: dict = {"use_safetensors": True, "trust_remote_code": False, "local_files_only": self.offline}
            if self.load_in_4bit:
                if device != "cuda":
                    raise RagError("llm.load_in_4bit needs a CUDA GPU: unset RAG_LLM__LOAD_IN_4BIT or use "
                                   "--device cuda")
                try:
                    import bitsandbytes  # noqa: F401
                except ImportError as exc:
                    raise RagError("4-bit loading needs bitsandbytes: run `pip install bitsandbytes`") from exc
                from transformers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_compute_dtype=resolve_dtype(self.requested_dtype, device))
                kwargs["device_map"] = {"": 0}
            else:
                kwargs["dtype"] = resolve_dtype(self.requested_dtype, device)
            try:
                tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False,
                                                          local_files_only=self.offline)
                model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            except RagError:
                raise
            except Exception as exc:  # noqa: BLE001 - loader failures get a message with a fix
                raise RagError(
                    f"could not load LM {self.model_ref!r} ({type(exc).__name__}: {exc}). Offline, use a local "
                    "folder with safetensors weights or the packaged default; with internet, set RAG_OFFLINE=false "
                    "to allow a hub download"
                ) from exc
            if self.reader is not None:
                model = _merge_adapter(model, self.reader.path)
            if not self.load_in_4bit:
                model.to(device)
            model.eval()  # no global autograd switch: every forward pass runs under `torch.inference_mode()`
            self.device = device
            self._tokenizer = tokenizer
            self._model = model
            return model, tokenizer

    @property
    def tokenizer(self):
        return self._load()[1]

    @property
    def context_window(self) -> int:  # type: ignore[override]
        model, _ = self._load()
        limit = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        return min(limit, self._context_tokens) if self._context_tokens else limit

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: Sequence[Message], prefix: str = "") -> str:
        tokenizer = self.tokenizer
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        else:
            text = render_plain(messages) + " "
        return text + prefix

    def count_prompt_tokens(self, messages: Sequence[Message], prefix: str = "") -> int:
        return self.count_tokens(self.render(messages, prefix))

    def stop_ids(self) -> set[int]:
        tokenizer = self.tokenizer
        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
            tid = tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
                ids.add(tid)
        return ids

    # -- decoding ----------------------------------------------------------------------------------------------------
    def _head(self, messages: Sequence[Message]) -> str:
        """The rendered text of every message but the last: the part of a prompt that repeats across questions
        (system rules, few-shot turns), whose KV cache is computed once and reused."""
        if len(messages) < 2 or not getattr(self.tokenizer, "chat_template", None):
            return ""
        return self.tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=False)

    def _prefix_state(self, head: str):
        """(length, KV cache) for `head`, computed on first use; `None` when there is no reusable head."""
        if not head:
            return None
        cached = self._prefix_cache.get(head)
        if cached is None:
            import torch

            model, tokenizer = self._load()
            ids = tokenizer(head, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
            with torch.inference_mode():
                _, past = forward_cached(model, ids, None)
            if len(self._prefix_cache) >= 8:
                self._prefix_cache.pop(next(iter(self._prefix_cache)))
            cached = self._prefix_cache[head] = (ids.shape[1], past)
        return cached

    def _prompt_inputs(self, prompt: str, head: str, reserve: int):
        """(input ids still to run, KV cache of what is already run) for `prompt`, reusing the cached state of `head`
        when the prompt starts with it; the prompt is cut from the left when it leaves fewer than `reserve` tokens of
        the context window (the prompt builder should prevent this; never crash)."""
        import copy

        _, tokenizer = self._load()
        state = self._prefix_state(head) if head and prompt.startswith(head) else None
        rest = prompt[len(head):] if state else prompt
        ids = tokenizer(rest, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
        limit = self.context_window
        past, used = None, 0
        if state is not None:
            used, cached = state
            past = copy.deepcopy(cached)  # the cache grows in place; keep the stored one intact
        if used + ids.shape[1] + reserve > limit:
            past = None
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
            ids = ids[:, -(limit - reserve):]
        return ids, past

    def _decode_loop(self, prompt: str, max_new_tokens: int, choose: Callable, head: str = "") -> Iterator[list[int]]:
        """Run the model step by step with a KV cache; `choose(logits, generated) -> token id or None` picks or stops.

        When `prompt` starts with `head` (ending at a message boundary, so tokenising the two parts apart gives the
        same tokens), the head's cached KV state is reused and only the rest is run. Yields the generated ids after
        each step. Each step (the forward pass and `choose`) runs under `torch.inference_mode()`; the caller's code
        between steps does not, so autograd stays usable in the thread.
        """
        import torch

        model, _ = self._load()
        ids, past = self._prompt_inputs(prompt, head, max_new_tokens)
        generated: list[int] = []
        for _ in range(max_new_tokens):
            with torch.inference_mode():
                all_logits, past = forward_cached(model, ids, past)
                logits = all_logits[0, -1].float()  # (V,)
                token = choose(logits, generated)
            if token is None:
                return
            generated.append(token)
            yield generated
            ids = torch.tensor([[token]], device=self.device)

    def stream(self, messages, max_new_tokens=96, temperature=0.0, stop=(), prefix=""):
        import torch

        stop_ids = self.stop_ids()

        def choose(logits, generated):
            if temperature > 0:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = int(torch.multinomial(probs, 1))
            else:
                token = int(torch.argmax(logits))
            return None if token in stop_ids else token

        yield from self._stream_text(self.render(messages, prefix), max_new_tokens, choose, stop, self._head(messages))

    def decode(self, messages, choose_next, max_new_tokens=96, prefix="", stop=()):
        def choose(logits, generated):
            return choose_next(logits.cpu().numpy(), generated)

        yield from self._stream_text(self.render(messages, prefix), max_new_tokens, choose, stop, self._head(messages))

    @contextmanager
    def continuations(self, messages, prefix="", reserve=32):
        import torch

        model, _ = self._load()
        with self._lock:
            ids, past = self._prompt_inputs(self.render(messages, prefix), self._head(messages), reserve)
            with torch.inference_mode():
                logits, past = forward_cached(model, ids, past)
            yield _TorchContinuations(model, past, logits[0, -1].float(), self.device)

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(list(ids)))

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _stream_text(self, prompt: str, max_new_tokens: int, choose: Callable, stop: Sequence[str],
                     head: str = "") -> Iterator[str]:
        tokenizer = self.tokenizer
        with self._lock:
            generated = self._decode_loop(prompt, max_new_tokens, choose, head)
            yield from StopStreamer(stop).pieces(tokenizer.decode(g, skip_special_tokens=True) for g in generated)


def _merge_adapter(model, path: Path):
    """The model with a LoRA adapter's update merged into its weights (no cost per token afterwards)."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise RagError("the trained reader needs peft: run `pip install peft`, or set RAG_LLM__ADAPTER=none") from exc
    try:
        with warnings.catch_warnings():  # peft reads a property transformers deprecates: not the user's to fix
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return PeftModel.from_pretrained(model, str(path), is_trainable=False).merge_and_unload()
    except Exception as exc:  # noqa: BLE001 - a mismatched or broken adapter gets a message with a fix
        raise RagError(f"could not apply the reader adapter {str(path)!r} ({type(exc).__name__}: {exc}): set "
                       "RAG_LLM__ADAPTER=none or retrain it for this model") from exc


class _TorchContinuations(Continuations):
    """Continuations of a prompt whose KV cache is held, all scored in one forward pass of batch 1: the candidates
    are laid end to end after the prompt, each token at its own position (prompt length + offset) and attending to
    the prompt and to the earlier tokens of its own candidate only (a 4-D mask). The prompt's cache is never copied:
    replicating it per candidate cost K times its size per answer (~0.8 GB for 12 candidates after a 1,500-token
    prompt with SmolLM2 in fp32), which the allocator then kept. The pass appends to the cache; it is cut back after.
    """

    def __init__(self, model, cache, last_logits, device):
        import torch

        self.model, self.cache, self.device = model, cache, device
        self.first_logprobs = torch.log_softmax(last_logits, dim=-1).cpu().numpy()

    def score(self, continuations, end_ids):
        import numpy as np
        import torch

        conts = [list(c) for c in continuations]
        if not conts:
            return []
        if any(not c for c in conts):
            raise ValueError("every continuation needs at least one token")
        prompt_len = self.cache.get_seq_length()
        flat = [tok for c in conts for tok in c]
        starts = np.cumsum([0] + [len(c) for c in conts])[:-1]
        owner = torch.tensor([k for k, c in enumerate(conts) for _ in c], device=self.device)
        offset = torch.tensor([t for c in conts for t in range(len(c))], device=self.device)
        n = len(flat)
        pad = padded_length(n) - n  # filler tokens of their own (owner -1) that no candidate token sees
        if pad:
            flat_run = flat + [flat[-1]] * pad
            owner = torch.cat([owner, torch.full((pad,), -1, device=self.device)])
            offset = torch.cat([offset, torch.zeros(pad, dtype=offset.dtype, device=self.device)])
        else:
            flat_run = flat
        # Token i sees the whole prompt and token j of the same candidate when j <= i.
        own = (owner[:, None] == owner[None, :]) & (offset[None, :] <= offset[:, None])
        allowed = torch.cat([torch.ones(n + pad, prompt_len, dtype=torch.bool, device=self.device), own], dim=1)
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=self.device)
        mask.masked_fill_(~allowed, torch.finfo(dtype).min)
        ends = torch.tensor(sorted(set(end_ids)), dtype=torch.long, device=self.device)
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([flat_run], device=self.device), attention_mask=mask[None, None],
                             position_ids=(prompt_len + offset)[None], use_cache=True,
                             **{_cache_argument(type(self.model)): self.cache})
            # negative: drop the last n + pad tokens (the spelling every transformers >= 4.56 accepts)
            self.cache.crop(-(n + pad))
            logprobs = torch.log_softmax(out.logits[0, :n].float(), dim=-1)  # (n, V)
            # following[i]: log-probability of flat[i + 1] after flat[i] (used only inside one candidate)
            targets = torch.tensor(flat[1:], dtype=torch.long, device=self.device)
            following = logprobs[:-1].gather(-1, targets[:, None])[:, 0]
            end_lp = torch.logsumexp(logprobs[:, ends], dim=-1) if len(ends) else torch.full((n,), -1e9)
        following, end_lp = following.cpu().numpy(), end_lp.cpu().numpy()
        first = self.first_logprobs
        scored = []
        for start, c in zip(starts, conts):
            # token t (t >= 1) is predicted at the candidate's position t - 1; token 0 by the prompt's last position
            token_lp = np.concatenate([[first[c[0]]], following[start: start + len(c) - 1]]).astype(np.float32)
            scored.append((token_lp, end_lp[start: start + len(c)].astype(np.float32)))
        return scored


