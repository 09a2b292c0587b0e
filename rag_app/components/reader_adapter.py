"""The trained reader: a LoRA adapter that makes the LM a span reader able to abstain (`rag train-reader`).

`llm.adapter` picks it: "auto" is the adapter shipped in `rag_app/readers/` for the packaged SmolLM2 (and none for
any other model), "none" turns it off (the few-shot reader of before), and a folder path names one's own. An
adapter folder holds peft's `adapter_config.json` and `adapter_model.safetensors` and our `reader_card.json`: the
base model it was trained on, how (data, steps, seed), and the calibrated decision rule the answer service reads
(`decision`: when to refuse). The card is the one home of every number fitted for that adapter.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_app.errors import RagError
from rag_app.settings import PACKAGED_LLM

CARD_NAME = "reader_card.json"
#: The adapter shipped for the packaged LM (trained by the command in its card; docs/benchmarks.md).
SHIPPED = {PACKAGED_LLM: Path(__file__).resolve().parents[1] / "readers" / "smollm2-135m-reader"}


@dataclass(frozen=True)
class ReaderAdapter:
    path: Path
    card: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def tag(self) -> str:
        """A short name for the model fingerprint: the adapter's weights hash, and a hash of the fitted `decision`
        and `reading` when the card has them (they change the replies too)."""
        if not self.card:
            return f"adapter:{self.path.name}"
        tag = "reader@" + str(self.card.get("adapter_sha256", ""))[:10]
        fits = {key: self.card[key] for key in ("decision", "reading") if key in self.card}
        if fits:
            tag += "+fit@" + hashlib.sha256(json.dumps(fits, sort_keys=True).encode()).hexdigest()[:6]
        return tag

    @property
    def decision(self) -> dict[str, float]:
        return dict(self.card.get("decision") or {})

    @property
    def reading(self) -> dict[str, float]:
        """The fitted weights that choose the answer among the reader's likeliest spans (`reshape_spans`)."""
        return dict(self.card.get("reading") or {})


def resolve_adapter(setting: str, model: str) -> ReaderAdapter | None:
    """The adapter `llm.adapter` names for `model` ("auto", "none" or a folder), checked; None for no adapter."""
    if setting == "none":
        return None
    if setting == "auto":
        path = SHIPPED.get(model)
        if path is None or not (path / "adapter_model.safetensors").is_file():
            return None
    else:
        path = Path(setting).expanduser()
    if not (path / "adapter_config.json").is_file() or not (path / "adapter_model.safetensors").is_file():
        raise RagError(f"llm.adapter {str(path)!r} is not an adapter folder (adapter_config.json and "
                       "adapter_model.safetensors, as `rag train-reader` writes): fix RAG_LLM__ADAPTER or set it to "
                       "none")
    card = json.loads((path / CARD_NAME).read_text(encoding="utf-8")) if (path / CARD_NAME).is_file() else {}
    base = card.get("base_model")
    if base and base != model:
        raise RagError(f"the reader adapter {str(path)!r} was trained on {base}, but llm.model is {model}: set "
                       "RAG_LLM__ADAPTER=none, or train one for this model with `rag train-reader`")
    return ReaderAdapter(path, card)
