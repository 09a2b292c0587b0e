"""Answer evaluation on BEIR-format data whose queries carry `answers`: EM, F1, answer-contained, refusals, latency.

    result = evaluate_answers(RAG(), Path("../shared/eval/squad"), load_answer_queries(path), unanswerable=True)
    print(format_table(result))

What is scored (all computed on text the user is shown):
- `short`: the direct answer alone (`Answer.short`: the extracted span, or the quoted sentence on a fallback),
  which leads the reply. EM and F1 are the standard SQuAD ones (lower-case, no punctuation or articles), taken
  as the maximum over the accepted answers.
- `reply`: the whole reply (`Answer.text`, with the `[n]` markers stripped): the short answer plus the quoted
  supporting sentence. "Contained" is whether a normalised gold answer occurs in it.
A refused question scores 0 on everything.

Figures are also broken down by question type (`question_type`: who, when, how many, what, why-how, open, other),
and when both passes run, refusals are scored as a detector of unanswerable questions (precision and recall).

Unanswerable questions (`unanswerable=True`): each question is asked again with its whole article hidden from
retrieval, so the documents no longer hold the answer; the right outcome is a refusal. The article is every
corpus document sharing the gold document's `title` (a SQuAD article), and hiding works by dropping those
documents' chunks from a deeper retrieval, which equals retrieving from a collection without them (up to BM25's
document frequencies).
"""

from __future__ import annotations

import collections
import json
import re
import string
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_app.errors import RagError
from rag_app.eval.data import corpus_file, default_collection, ingest_progress, read_jsonl
from rag_app.eval.metrics import percentile
from rag_app.services.questions import QUESTION_TYPES, question_type

if TYPE_CHECKING:
    from rag_app.api import RAG


@dataclass
class AnswerQuery:
    id: str
    text: str
    answers: list[str]
    corpus_id: str | None = None
    unanswerable: bool = False  # written against its paragraph but not answered by it (SQuAD 2.0 style)


# -- SQuAD metrics ---------------------------------------------------------------------------------------------------
def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, drop punctuation and articles, squeeze whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, gold: str) -> float:
    gold_norm = normalize_answer(gold)
    return float(bool(gold_norm) and f" {gold_norm} " in f" {normalize_answer(prediction)} ")


def best_over(metric: Callable[[str, str], float], prediction: str, golds: list[str]) -> float:
    return max((metric(prediction, gold) for gold in golds), default=0.0)


def refusal_scores(answerable: PassResult, unanswerable: PassResult) -> dict[str, float]:
    """Refusal as a detector of unanswerable questions: precision (refusals that were right), recall, F1 (in %)."""
    right = sum(r["refused"] for r in unanswerable.rows)
    wrong = sum(r["refused"] for r in answerable.rows)
    precision = right / (right + wrong) if right + wrong else 0.0
    recall = right / len(unanswerable.rows) if unanswerable.rows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(100 * precision, 2), "recall": round(100 * recall, 2), "f1": round(100 * f1, 2)}


# -- data --------------------------------------------------------------------------------------------------------------
def load_answer_queries(path: Path) -> list[AnswerQuery]:
    """Queries JSONL rows with `_id`, `text` and `answers`, and rows marked `"unanswerable": true` (SQuAD 2.0 style,
    where the right outcome is a refusal); others are skipped."""
    rows = read_jsonl(path, "queries", "_id, text, answers")
    queries = [AnswerQuery(str(r["_id"]), str(r["text"]), [str(a) for a in r.get("answers") or []], r.get("corpus_id"),
                           unanswerable=bool(r.get("unanswerable")))
               for r in rows if r.get("answers") or r.get("unanswerable")]
    if not queries:
        raise RagError(f"no query in {path} has an `answers` field: answer evaluation needs gold answers")
    return queries


def article_map(corpus: Path) -> dict[str, set[str]]:
    """doc id → the ids of every document with the same title (its article)."""
    by_title: dict[str, set[str]] = collections.defaultdict(set)
    title_of: dict[str, str] = {}
    with open(corpus, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                doc_id, title = str(row["_id"]), str(row.get("title") or row["_id"])
                by_title[title].add(doc_id)
                title_of[doc_id] = title
    return {doc_id: by_title[title] for doc_id, title in title_of.items()}


class HidingRetriever:
    """A retriever that never returns chunks of the hidden documents (a collection without them, in effect)."""

    def __init__(self, inner, hidden: set[str], extra_depth: int = 60):
        self.inner = inner
        self.hidden = hidden
        self.extra_depth = extra_depth

    def retrieve(self, query: str, k: int | None = None, source_glob: str | None = None, **kwargs):
        k = k or self.inner.settings.retrieve.k
        hits = self.inner.retrieve(query, k=k + self.extra_depth, source_glob=source_glob, **kwargs)
        return [h for h in hits if str(h.metadata.get("doc_id", h.id)) not in self.hidden][:k]


# -- running -------------------------------------------------------------------------------------------------------
@dataclass
class PassResult:
    """Figures of one pass over the questions (answerable, or with their article hidden)."""

    questions: int
    metrics: dict[str, float]  # em, f1 (short answer), reply_em, reply_f1, contained (reply), short_contained, refused
    latency_ms: dict[str, float]  # total p50/p95/mean, first_token p50/p95
    rows: list[dict[str, Any]] = field(default_factory=list)
    by_type: dict[str, dict[str, float]] = field(default_factory=dict)  # question type -> n, em, f1, contained, refused


@dataclass
class AnswerEvalResult:
    corpus: str
    collection: str
    model: str
    answerable: PassResult | None
    unanswerable: PassResult | None
    ingest_seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    refusal: dict[str, float] | None = None  # precision / recall / f1 of refusing, when both passes ran
    # The set's own unanswerable questions (SQuAD 2.0 style), asked over the whole corpus, and the SQuAD 2.0 scores
    # over all its questions (a refusal is the empty answer; an unanswerable question scores 1 only when refused).
    adversarial: PassResult | None = None
    squad2: dict[str, float] | None = None

    def to_dict(self, rows: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not rows:
            for name in ("answerable", "unanswerable", "adversarial"):
                if data[name]:
                    data[name].pop("rows", None)
        return data


def evaluate_answers(rag: RAG, corpus: Path, queries: list[AnswerQuery], *, collection: str | None = None,
                     answerable: bool = True, unanswerable: bool = False, k: int | None = None,
                     progress: Callable[[str], None] | None = None) -> AnswerEvalResult:
    """Ingest `corpus` (idempotent), ask every query, and score the answers.

    Args:
        rag: the app with the settings to evaluate.
        corpus: a BEIR folder or its corpus.jsonl.
        queries: questions with gold answers (and `corpus_id`, needed for the unanswerable pass).
        collection: the collection (default: one named after the corpus and chunking recipe).
        answerable: run the normal pass.
        unanswerable: also ask each question with its article hidden; the right outcome is a refusal.
        k: chunks retrieved per question (default: settings).
        progress: called with a line of text now and then.
    """
    say = progress or (lambda _line: None)
    corpus = corpus_file(corpus)
    collection = collection or default_collection(rag, corpus)
    started = time.perf_counter()
    say(f"ingesting {corpus} into collection {collection!r} (unchanged files are skipped)")
    summary = rag.ingest([corpus], collection=collection, progress=ingest_progress(say) if progress else None)
    if summary.failed:
        raise RagError(f"ingesting {corpus} failed: {summary.failed[0]['error']}")
    ingest_seconds = time.perf_counter() - started

    retriever = rag.retriever(collection)
    service = rag.answerer(collection)
    say("loading the models (warm-up question, not timed)")
    service.ask(queries[0].text, k=k)

    result = AnswerEvalResult(corpus=str(corpus), collection=collection, model=rag.llm.name, answerable=None,
                              unanswerable=None, ingest_seconds=round(ingest_seconds, 2),
                              settings={"answer": rag.settings.answer.model_dump(),
                                        "retrieve_mode": rag.settings.retrieve.mode,
                                        "k": k or rag.settings.retrieve.k})
    adversarial = [q for q in queries if q.unanswerable]
    queries = [q for q in queries if not q.unanswerable]
    if answerable and queries:
        result.answerable = _run_pass(queries, lambda q: service, k, say, "answerable")
    if adversarial:
        result.adversarial = _run_pass(adversarial, lambda q: service, k, say, "adversarial")
        if result.answerable:
            result.squad2 = squad2_scores(result.answerable, result.adversarial)
            result.refusal = refusal_scores(result.answerable, result.adversarial)
    if unanswerable and queries:
        articles = article_map(corpus)
        missing = [q.id for q in queries if not q.corpus_id or q.corpus_id not in articles]
        if missing:
            raise RagError(f"--unanswerable needs each query's `corpus_id` in the corpus; {len(missing)} lack it "
                           f"(e.g. {missing[0]})")

        def hidden_service(query: AnswerQuery):
            return rag.answerer(collection, retriever=HidingRetriever(retriever, articles[query.corpus_id]))

        result.unanswerable = _run_pass(queries, hidden_service, k, say, "unanswerable")
    if result.answerable and result.unanswerable and not adversarial:
        result.refusal = refusal_scores(result.answerable, result.unanswerable)
    return result


def squad2_scores(answerable: PassResult, adversarial: PassResult) -> dict[str, float]:
    """SQuAD 2.0 scoring over both kinds (in %): overall EM/F1, answerable F1, unanswerable refused."""
    has = [(r["em"], r["f1"]) for r in answerable.rows]
    none = [float(r["refused"]) for r in adversarial.rows]
    n = len(has) + len(none)
    return {"em": round(100 * (sum(e for e, _ in has) + sum(none)) / n, 2),
            "f1": round(100 * (sum(f for _, f in has) + sum(none)) / n, 2),
            "has_answer_f1": round(100 * _mean(f for _, f in has), 2),
            "no_answer_refused": round(100 * _mean(none), 2)}


def _run_pass(queries: list[AnswerQuery], service_for: Callable, k: int | None, say: Callable[[str], None],
              label: str) -> PassResult:
    rows: list[dict[str, Any]] = []
    for number, query in enumerate(queries, 1):
        answer = service_for(query).ask(query.text, k=k)
        reply = _strip_markers(answer.text)
        short = "" if answer.refused else answer.short
        if answer.refused:
            reply = ""
        rows.append({
            "id": query.id, "question": query.text, "type": question_type(query.text), "answers": query.answers,
            "reply": answer.text,
            "short": short, "refused": answer.refused,
            "em": best_over(exact_match, short, query.answers), "f1": best_over(f1_score, short, query.answers),
            "reply_em": best_over(exact_match, reply, query.answers),
            "reply_f1": best_over(f1_score, reply, query.answers),
            "contained": best_over(contains, reply, query.answers),
            "short_contained": best_over(contains, short, query.answers),
            "total_ms": answer.timings.total_ms, "first_token_ms": answer.timings.first_token_ms,
            "retrieve_ms": answer.timings.retrieve_ms, "evidence_ms": answer.timings.evidence_ms,
            "relevance": answer.extra.get("relevance"), "span": answer.extra.get("span"),
            "home_rank": answer.extra.get("home_rank"), "form": answer.extra.get("form"),
            "offered_contains": [best_over(contains, text, query.answers) for text in answer.extra.get("offered", [])],
            "cited": [s.source for s in answer.cited_sources],
        })
        if number % 25 == 0 or number == len(queries):
            done = rows
            say(f"{label}: {number}/{len(queries)}  F1 {100 * _mean(r['f1'] for r in done):.1f}  contained "
                f"{100 * _mean(r['contained'] for r in done):.1f}%  "
                f"refused {100 * _mean(r['refused'] for r in done):.1f}%")
    totals = [r["total_ms"] for r in rows]
    firsts = [r["first_token_ms"] for r in rows if r["first_token_ms"] is not None]
    metrics = {name: round(100 * _mean(r[name] for r in rows), 2)
               for name in ("em", "f1", "reply_em", "reply_f1", "contained", "short_contained", "refused")}
    latency = {"p50": percentile(totals, 50), "p95": percentile(totals, 95), "mean": _mean(totals),
               "first_token_p50": percentile(firsts, 50) if firsts else float("nan"),
               "first_token_p95": percentile(firsts, 95) if firsts else float("nan")}
    by_type = {}
    for name in QUESTION_TYPES:
        group = [r for r in rows if r["type"] == name]
        if group:
            by_type[name] = {"n": len(group), **{m: round(100 * _mean(r[m] for r in group), 2)
                                                 for m in ("em", "f1", "contained", "refused")}}
    return PassResult(len(rows), metrics, {k: round(v, 1) for k, v in latency.items()}, rows, by_type)


def _strip_markers(text: str) -> str:
    from rag_app.text import strip_citations

    return strip_citations(text)


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0


def format_table(result: AnswerEvalResult) -> str:
    """A small text table of the figures."""
    rows: list[tuple[str, str]] = [("model", result.model), ("collection", result.collection)]
    if result.answerable:
        m, lat = result.answerable.metrics, result.answerable.latency_ms
        rows += [
            ("questions", str(result.answerable.questions)),
            ("EM (short answer)", f"{m['em']:.1f}"),
            ("F1 (short answer)", f"{m['f1']:.1f}"),
            ("EM / F1 (whole reply)", f"{m['reply_em']:.1f} / {m['reply_f1']:.1f}"),
            ("answer contained (reply)", f"{m['contained']:.1f} %"),
            ("answer contained (short)", f"{m['short_contained']:.1f} %"),
            ("refused (answerable)", f"{m['refused']:.1f} %"),
            ("latency p50 / p95", f"{lat['p50']:.0f} / {lat['p95']:.0f} ms"),
            ("first token p50 / p95", f"{lat['first_token_p50']:.0f} / {lat['first_token_p95']:.0f} ms"),
        ]
    if result.unanswerable:
        m, lat = result.unanswerable.metrics, result.unanswerable.latency_ms
        rows += [
            ("unanswerable questions", str(result.unanswerable.questions)),
            ("refused (unanswerable)", f"{m['refused']:.1f} %"),
            ("latency p50 (unanswerable)", f"{lat['p50']:.0f} ms"),
        ]
    if result.adversarial:
        m, lat = result.adversarial.metrics, result.adversarial.latency_ms
        rows += [("unanswerable questions (the set's own)", str(result.adversarial.questions)),
                 ("refused (the set's unanswerable)", f"{m['refused']:.1f} %")]
    if result.squad2:
        q = result.squad2
        rows.append(("SQuAD 2.0 EM / F1 (all questions)", f"{q['em']:.1f} / {q['f1']:.1f}"))
    if result.refusal:
        r = result.refusal
        rows.append(("refusal precision / recall", f"{r['precision']:.1f} / {r['recall']:.1f} %"))
    if result.answerable and result.answerable.by_type:
        for name, t in result.answerable.by_type.items():
            rows.append((f"  {name} (n={t['n']})", f"EM {t['em']:.1f}  F1 {t['f1']:.1f}  contained "
                                                   f"{t['contained']:.1f} %  refused {t['refused']:.1f} %"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
