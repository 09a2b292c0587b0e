"""Open questions with reference answers (e.g. ../shared/eval/genai_dev): do the answers explain, and cite well?

    result = evaluate_open(RAG(), load_open_queries(path))      # over the bundled corpus unless `corpus` is given

Per question, on the text the user is shown (citation markers stripped):
- answered: not refused;
- cosine: embedding cosine between the reply and the reference, with the app's own embedder (the packaged
  all-MiniLM-L6-v2 by default);
- rouge_l_recall: the longest common subsequence of normalised words, as a share of the reference's words;
- supported: the share of the reply's sentences whose `[n]` citations point at a source that supports them
  (`grounding.support` >= `answer.min_support` for at least one cited source); a sentence citing nothing counts
  as unsupported. Refused questions score 0 everywhere and are left out of `supported`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag_app.errors import RagError
from rag_app.eval.answers import normalize_answer
from rag_app.eval.data import read_jsonl
from rag_app.eval.metrics import percentile

if TYPE_CHECKING:
    from rag_app.api import RAG


@dataclass
class OpenQuery:
    id: str
    text: str
    reference: str
    section: str = ""


@dataclass
class OpenEvalResult:
    collection: str
    model: str
    questions: int
    metrics: dict[str, float]  # answered %, cosine, rouge_l_recall, supported % (of answered replies' sentences)
    latency_ms: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, rows: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not rows:
            data.pop("rows")
        return data


def load_open_queries(path: Path) -> list[OpenQuery]:
    """JSON lines with `_id`, `text` and `reference` (and optionally `section`)."""
    rows = read_jsonl(path, "questions", "_id, text, reference")
    queries = [OpenQuery(str(r["_id"]), str(r["text"]), str(r["reference"]), str(r.get("section", "")))
               for r in rows if r.get("reference")]
    if not queries:
        raise RagError(f"no question in {path} has a `reference` field: the open-answer eval needs reference answers")
    return queries


def rouge_l_recall(candidate: str, reference: str) -> float:
    """Longest common subsequence of normalised words / the reference's word count."""
    cand, ref = normalize_answer(candidate).split(), normalize_answer(reference).split()
    if not cand or not ref:
        return 0.0
    previous = [0] * (len(cand) + 1)
    for word in ref:
        current = [0]
        for j, other in enumerate(cand, 1):
            current.append(previous[j - 1] + 1 if word == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1] / len(ref)


def supported_share(answer, min_support: float) -> float:
    """Share of the reply's sentences backed by a source they cite (0 when nothing is cited)."""
    from rag_app.services.grounding import support
    from rag_app.text import cited_numbers, content_words, split_sentences, strip_citations

    texts = {s.n: s.text for s in answer.sources}
    sentences: list[str] = []
    for piece in split_sentences(answer.text):
        if content_words(strip_citations(piece)):
            sentences.append(piece)
        elif sentences and cited_numbers(piece):  # `"A quote." [2]`: the marker belongs to the quote before it
            sentences[-1] += " " + piece
    if not sentences:
        return 0.0
    backed = 0
    for sentence in sentences:
        claim = strip_citations(sentence).strip('"“”')
        numbers = [n for n in cited_numbers(sentence) if n in texts]
        backed += any(support(claim, texts[n]) >= min_support for n in numbers)
    return backed / len(sentences)


def evaluate_open(rag: RAG, queries: list[OpenQuery], *, collection: str | None = None,
                  corpus: Path | None = None, progress: Callable[[str], None] | None = None) -> OpenEvalResult:
    """Ask every open question over a collection (the bundled corpus by default) and score the replies.

    Args:
        rag: the app with the settings to evaluate.
        queries: questions with reference answers.
        collection: the collection to ask (default: settings.store.collection).
        corpus: a folder to ingest into it first (idempotent); by default the bundled corpus, when it is empty.
        progress: called with a line of text now and then.
    """
    from rag_app.text import strip_citations

    say = progress or (lambda _line: None)
    name = collection or rag.settings.store.collection
    if corpus is not None:
        say(f"ingesting {corpus} into collection {name!r} (unchanged files are skipped)")
        rag.ingest([corpus], collection=name)
    elif name == rag.settings.store.collection:
        rag.ensure_corpus()
    say("loading the models (warm-up question, not timed)")
    rag.ask(queries[0].text, collection=name)
    rows = []
    for number, query in enumerate(queries, 1):
        started = time.perf_counter()
        answer = rag.ask(query.text, collection=name)
        total_ms = (time.perf_counter() - started) * 1000
        reply = "" if answer.refused else strip_citations(answer.text)
        cosine = 0.0
        if reply:
            vectors = rag.embedder.embed([reply, query.reference])
            cosine = float(np.dot(vectors[0], vectors[1]))
        rows.append({
            "id": query.id, "question": query.text, "reply": answer.text, "refused": answer.refused,
            "form": answer.extra.get("form"), "cosine": round(cosine, 4),
            "rouge_l_recall": round(rouge_l_recall(reply, query.reference), 4),
            "supported": None if answer.refused else round(supported_share(answer, rag.settings.answer.min_support), 4),
            "cited": [s.source for s in answer.cited_sources], "total_ms": round(total_ms, 1),
            "relevance": answer.extra.get("relevance"), "span": answer.extra.get("span"),
        })
        say(f"{number}/{len(queries)} {'refused' if answer.refused else f'cosine {cosine:.2f}'}: {query.text}")
    answered = [r for r in rows if not r["refused"]]
    metrics = {
        "answered": round(100 * len(answered) / len(rows), 2),
        "cosine": round(float(np.mean([r["cosine"] for r in rows])), 4),
        "cosine_answered": round(float(np.mean([r["cosine"] for r in answered])), 4) if answered else 0.0,
        "rouge_l_recall": round(float(np.mean([r["rouge_l_recall"] for r in rows])), 4),
        "supported": round(100 * float(np.mean([r["supported"] for r in answered])), 2) if answered else 0.0,
    }
    totals = [r["total_ms"] for r in rows]
    latency = {"p50": round(percentile(totals, 50), 1), "p95": round(percentile(totals, 95), 1)}
    return OpenEvalResult(name, rag.llm.name, len(rows), metrics, latency, rows)


def format_table(result: OpenEvalResult) -> str:
    m = result.metrics
    rows = [("model", result.model), ("collection", result.collection), ("questions", str(result.questions)),
            ("answered", f"{m['answered']:.1f} %"),
            ("cosine to reference (all / answered)", f"{m['cosine']:.3f} / {m['cosine_answered']:.3f}"),
            ("ROUGE-L recall", f"{m['rouge_l_recall']:.3f}"),
            ("sentences supported by their citation", f"{m['supported']:.1f} %"),
            ("latency p50 / p95", f"{result.latency_ms['p50']:.0f} / {result.latency_ms['p95']:.0f} ms")]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
