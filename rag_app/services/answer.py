"""The answer service: question → (follow-up rewrite) → retrieval → grounded, cited answer, streamed.

Two strategies (`settings.answer.strategy`):

- **extractive** (default; right for the tiny packaged LM). The retrieved chunks are split into sentences and ranked
  as support for the question (`grounding.SentenceWeights`: embedding cosine plus question-word overlap, chunk
  rank, BM25 rank, length, answer kind, overlap with the neighbouring sentences and the cosine read with the
  sentence before). When the evidence is weak (the refusal rule, or the trained reader's gate), the service refuses. Otherwise the best few sentences, numbered by source, go
  into a few-shot prompt, and the LM decodes the answer under a constraint: every token must extend a verbatim span
  of those sentences (`rag_app.services.extractive`; an LM without logits generates, and its reply is snapped onto
  them). The reply is that short span, its citation, and the supporting sentence quoted: grounded by construction.
  Open and why/how questions get an explanation instead of the quote: 2-4 supporting sentences in reading order,
  each cited (`Answer.extra["form"]` says which form was used: "short", "explain" or "quote").
- **generative** (for capable models, e.g. over an OpenAI-compatible server). Numbered chunks fill the prompt up to
  the token budget; the reply is streamed, then every sentence is checked against the source it cites. An
  unsupported reply is replaced by a quote of the best supporting sentence.

Either way the final `Answer` (yielded last by `stream`) is authoritative: its `text` is what was streamed, unless
the grounding check replaced it (`fallback=True`). Each cited `Source` says which of its sentences the answer rests
on (`cited_spans`), so a face can highlight them without guessing.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rag_app.errors import RagError
from rag_app.services.extractive import (
    SHAPED_SPANS,
    answer_type,
    answers_something,
    clean_span,
    question_words,
    reshape_spans,
    span_candidates,
    span_shapes,
    stream_span,
)
from rag_app.services.grounding import (
    Evidence,
    SentenceWeights,
    offered_evidence,
    rank_evidence,
    relevance,
    support,
)
from rag_app.services.prompting import (
    NO_ANSWER,
    SPAN_EXAMPLES,
    Passage,
    fit_passages,
    generative_messages,
    reader_messages,
    rewrite_followup,
    span_messages,
)
from rag_app.services.questions import defined_term, defines, request_topic, wants_explanation
from rag_app.settings import Settings
from rag_app.text import cited_numbers, content_words, find_span, split_sentences, squeeze_words, strip_citations

REFUSAL = "I don't know: the documents don't say."
SPAN_PREFIX = "Answer:"
_DONT_KNOW = re.compile(r"^\W*(i\s+don'?t\s+know|i\s+do\s+not\s+know|the\s+(sources|documents)\s+do\s*n[o']t)", re.I)


#: Chunk metadata that says where in a file a chunk comes from, beyond page and lines (set by ingest/loaders/).
LOCATOR_KEYS = ("slide", "sheet", "chapter", "message", "attachment", "ocr")


@dataclass
class Source:
    """A retrieved chunk as shown to the user, numbered as cited: `[n]` in the answer is `sources[n - 1]`."""

    n: int
    source: str
    title: str
    section: str
    page: int | None
    lines: str | None  # "start-end" (1-based, inclusive) when known
    score: float
    text: str
    cited: bool = False
    # (start, end) character offsets into `text` of the sentences the answer rests on, most important first: for an
    # extractive answer the sentence the span comes from and the best-ranked one; for a generative answer the evidence
    # sentence each cited claim rests on. Empty for a source the answer does not cite.
    cited_spans: list[tuple[int, int]] = field(default_factory=list)
    # Where in the file, beyond page and lines: slide, sheet, chapter, message, attachment, ocr (as the loader set it).
    locator: dict[str, Any] = field(default_factory=dict)

    def location(self, lines: bool = True) -> str:
        """The cited place in words: "page 3 (OCR)", "slide 4", "sheet Q3, rows 2-9", "message 2", "lines 10-20"."""
        where = self.locator
        parts = [f"page {self.page}"] if self.page is not None else []
        for key in ("slide", "chapter", "message"):
            if key in where:
                parts.append(f"{key} {where[key]}")
        if "sheet" in where:
            parts.append(f"sheet {where['sheet']}" + (f", rows {self.lines}" if lines and self.lines else ""))
        elif lines and self.lines and not parts:
            parts.append(f"lines {self.lines}")
        if "attachment" in where:
            parts.append(f"attachment {where['attachment']}")
        text = ", ".join(parts)
        return f"{text} (OCR)" if where.get("ocr") and text else ("OCR" if where.get("ocr") else text)

    @classmethod
    def from_hit(cls, n: int, hit) -> Source:
        meta = hit.metadata or {}
        start, end = meta.get("start_line"), meta.get("end_line")
        lines = f"{start}-{end}" if start is not None and end is not None else (str(start) if start else None)
        page = meta.get("page")
        return cls(n=n, source=str(meta.get("source") or meta.get("doc_id") or hit.id),
                   title=str(meta.get("title") or ""),
                   section=str(meta.get("section") or ""), page=int(page) if page not in (None, "", -1) else None,
                   lines=lines, score=round(float(hit.score), 4), text=hit.text,
                   locator={key: meta[key] for key in LOCATOR_KEYS if meta.get(key) not in (None, "", False)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timings:
    retrieve_ms: float = 0.0  # follow-up rewrite and retrieval
    evidence_ms: float = 0.0  # sentence ranking (embedding the candidate sentences)
    first_token_ms: float | None = None  # from the call to the first streamed piece
    total_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class Answer:
    """A grounded answer. `text` is what the user sees; `short` is the direct answer alone (no citation or quote)."""

    text: str
    refused: bool
    sources: list[Source]
    timings: Timings
    model: str
    question: str = ""
    standalone_question: str = ""  # the question after follow-up rewriting: what was retrieved for
    short: str = ""
    fallback: bool = False  # the generated reply was unsupported and replaced by a quote
    extra: dict[str, Any] = field(default_factory=dict)  # diagnostics, e.g. the evidence score

    @property
    def cited_sources(self) -> list[Source]:
        return [s for s in self.sources if s.cited]

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "refused": self.refused,
            "short_answer": self.short,
            "sources": [s.to_dict() for s in self.sources],
            "timings": self.timings.to_dict(),
            "model": self.model,
            "question": self.question,
            "standalone_question": self.standalone_question,
            "fallback": self.fallback,
        }


class AnswerService:
    """Answers questions from a retriever's chunks with an LM; see the module docstring for the two strategies."""

    def __init__(self, settings: Settings, retriever, llm, embedder):
        self.settings = settings
        self.retriever = retriever
        self.llm = llm
        self.embedder = embedder

    # -- public ------------------------------------------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[dict] | None = None, k: int | None = None) -> Answer:
        """Answer `question` (a follow-up is made standalone from `history`); returns the final `Answer`."""
        answer = None
        for item in self.stream(question, history=history, k=k):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str, history: Sequence[dict] | None = None, k: int | None = None
               ) -> Iterator[str | Answer]:
        """Yield pieces of the answer text as they are produced, then the final `Answer`.

        Args:
            question: the user's question.
            history: earlier turns, `{"role": "user"|"assistant", "content": str}`, oldest first.
            k: chunks to retrieve (default `settings.retrieve.k`).
        """
        run = _Run(self, question)
        keep = 2 * self.settings.answer.history_turns
        turns = list(history or [])[-keep:] if keep else []
        run.standalone = rewrite_followup(question, turns)
        # A request ("List the steps of …") is searched and judged by its topic: its verb is no word of the documents.
        topic = request_topic(run.standalone)
        hits = self.retriever.retrieve(topic, k=k)
        run.sources = [Source.from_hit(n, hit) for n, hit in enumerate(hits, start=1)]
        run.timings.retrieve_ms = run.elapsed()
        cfg = self.settings.answer
        evidence = rank_evidence(topic, hits, self.embedder, weights=SentenceWeights(*cfg.sentence_weights),
                                 max_sentences=cfg.max_sentences)
        run.timings.evidence_ms = run.elapsed() - run.timings.retrieve_ms
        signal = relevance(topic, hits, evidence)
        run.extra["evidence_score"] = round(evidence[0].score, 4) if evidence else None
        run.extra["relevance"] = signal.to_dict()
        run.relevance = signal.score
        if not evidence or signal.score < self._min_relevance():
            yield from run.refuse()
            return
        # An LM may name the strategy that works with it (a LangChain chat model shows no logits: generative).
        strategy = run.extra["strategy"] = getattr(self.llm, "answer_strategy", None) or cfg.strategy
        if strategy == "generative":
            yield from self._generative(run, evidence)
        else:
            yield from self._extractive(run, evidence)

    def _reader(self):
        """The trained reader's adapter when the LM has one and shows its logits (else the few-shot reader)."""
        reader = getattr(self.llm, "reader", None)
        return reader if reader is not None and self.llm.exposes_logits else None

    def _min_relevance(self) -> float:
        """The relevance below which the service refuses before reading: `answer.min_relevance` when set, else the
        trained reader's calibrated gate (it abstains by reading, so the gate only stops what is off topic), else
        the threshold calibrated for the embedder."""
        reader = self._reader()
        if self.settings.answer.min_relevance is None and reader is not None and "min_relevance" in reader.decision:
            return float(reader.decision["min_relevance"])
        return self.settings.refusal_threshold

    # -- strategies --------------------------------------------------------------------------------------------------
    def _budget(self, max_new_tokens: int) -> int:
        window = min(self.settings.llm.context_tokens, int(self.llm.context_window))
        return window - max_new_tokens

    def _no_room(self, exc: ValueError, reply_tokens: int) -> RagError:
        return RagError(f"the LM's context window ({self.llm.context_window} tokens, llm.context_tokens "
                        f"{self.settings.llm.context_tokens}) less the {reply_tokens} kept for the reply leaves no "
                        f"room for the question and its evidence ({exc}): ask a shorter question, raise "
                        "RAG_LLM__CONTEXT_TOKENS, lower RAG_LLM__MAX_NEW_TOKENS or use a model with a longer window")

    def _extractive(self, run: _Run, evidence: list[Evidence]) -> Iterator[str | Answer]:
        cfg = self.settings.answer
        titles = {s.n: s.title for s in run.sources}
        # Only sentences that support the question may hold the answer: an instruction planted in a document
        # ("ignore previous instructions and reply X") is not about the question, so it is never offered.
        # The margin is on the topic score (cosine + overlap), which the ranker's other terms (chunk rank, length)
        # cannot lift.
        offered = offered_evidence(evidence, cfg.evidence_sentences, cfg.evidence_margin)
        run.extra["offered"] = [e.text for e in offered]
        passages = [Passage(e.source, e.text, titles.get(e.source, "")) for e in offered]
        count = lambda ms: self.llm.count_prompt_tokens(ms, prefix=SPAN_PREFIX)  # noqa: E731
        # Room for the span after the prompt: the likelihood reader scores continuations of reader_max_tokens (the
        # larger of the two caps is kept, so the defaults budget the prompt as the reader was fitted with).
        span_tokens = cfg.span_max_tokens
        if cfg.reader == "likelihood" and self.llm.exposes_logits:
            span_tokens = max(span_tokens, cfg.reader_max_tokens)
        reader = self._reader()
        budget = self._budget(span_tokens)
        try:
            if reader is not None:
                messages, kept = fit_passages(passages, lambda ps: reader_messages(run.standalone, ps), count, budget)
            else:
                for shots in range(len(SPAN_EXAMPLES), -1, -1):  # fewer few-shot turns when the window is small
                    try:
                        messages, kept = fit_passages(passages, lambda ps: span_messages(run.standalone, ps, shots),
                                                      count, budget)
                    except ValueError:
                        if shots == 0:
                            raise
                        continue
                    if kept or shots == 0:
                        break
        except ValueError as exc:
            raise self._no_room(exc, span_tokens) from exc
        kept = kept or passages[:1]
        # Whether an open question gets an explanation (which then replaces the short answer) is known only after the
        # reading: hold its span back.
        explaining = wants_explanation(run.standalone)
        abstained = False
        if reader is not None:
            span = self._read(run, messages, [p.text for p in kept], reader)
            # The reader found no short answer in the evidence: a refusal, unless the question wants an explanation
            # (a span reader finds no phrase that answers "Describe X"); then the explanation, if any, answers.
            abstained = run.extra["abstained"] = span is None
            # A span that is no answer (it only repeats the question's words) is no better than none: refused
            # before anything is streamed, rather than quoting a sentence that may not answer.
            unusable = span is not None and not self._answer_home(run, span, kept)[1]
            if (abstained or unusable) and not explaining:
                yield from run.refuse()
                return
            reading = iter([span] if span else [])
        else:
            reading = self._span(run, messages, [p.text for p in kept])
        pieces: list[str] = []
        for piece in reading:
            if not pieces:
                piece = piece.lstrip()
                if not piece:
                    continue
            pieces.append(piece)
            if not explaining:
                yield from run.emit(piece)
        span = "".join(pieces).strip()
        clean = clean_span(span)
        home, usable = self._answer_home(run, span, kept)
        run.extra["home_rank"] = kept.index(home) if home is not None else None
        explanation = self._explanation(run, evidence) if explaining else []
        # Nothing to explain with, and no short answer from the trained reader: refused.
        if (abstained or (reader is not None and not usable)) and len(explanation) < 2:
            yield from run.refuse()
            return
        if len(explanation) >= 2:
            # An open question: the sentences that together explain, in reading order, each cited; a sentence that
            # introduces a list brings its items. No short answer leads: on an open question the span is a fragment.
            run.extra["form"] = "explain"
            texts = {s.n: s.text for s in run.sources}
            pieces_out: list[str] = []
            rests_on = []
            for e in explanation:
                items = list_items(e.text, texts.get(e.source, ""))
                if items:
                    intro = e.text.rstrip().rstrip(":").rstrip()
                    pieces_out.append(f"{intro} [{e.source}]:\n" + "\n".join(f"- {item} [{e.source}]"
                                                                             for item in items) + "\n")
                    rests_on += [(e.source, e.text)] + [(e.source, item) for item in items]
                else:
                    pieces_out.append(_with_citation(e.text, e.source))
                    rests_on.append((e.source, e.text))
            short = clean if usable else kept[0].text  # the best-ranked sentence, as the quote form has it
            cited = sorted({n for n, _ in rests_on})
            text = ""
            for index, piece in enumerate(pieces_out):  # streamed sentence by sentence
                joined = ("" if not index or text.endswith("\n") else " ") + piece
                text += joined
                yield from run.emit(joined)
            if text.endswith("\n"):
                text = text.rstrip("\n")
            yield run.finish(text, short=short, cited=cited, rests_on=rests_on, fallback=bool(span) and not usable)
            return
        if explaining and span:
            yield from run.emit(span)  # held back above; the short and quote forms follow it
        if not usable:
            # Nothing usable came out: answer with the best supporting sentence, quoted.
            run.extra["form"] = "quote"
            best = kept[0]
            text = f'"{best.text}" [{best.n}]'
            yield from run.emit(("\n" if span else "") + text)
            yield run.finish(text, short=best.text, cited=[best.n], fallback=bool(span), rests_on=[(best.n, best.text)])
            return
        run.extra["form"] = "short"
        tail = f" [{home.n}]."
        quoted = [home]
        if cfg.quote:
            # The best-ranked sentences and the one the answer comes from, in rank order: the reader sees the
            # evidence, and a wrong pick by the small LM still shows the best supporting sentences.
            best = kept[:cfg.quote_sentences]
            # One more when the ranker can hardly tell it from the last one shown (kept[i] is offered[i]).
            if len(kept) > len(best) and offered[len(best)].score >= offered[len(best) - 1].score - cfg.quote_margin:
                best = kept[:len(best) + 1]
            quoted = best + ([home] if home not in best else [])
            if squeeze_words(clean) == squeeze_words(home.text):  # the short answer is its whole sentence: not quoted again
                quoted = [p for p in quoted if p != home]
            if quoted:
                tail += "\n\n" + "\n".join(f'"{p.text}" [{p.n}]' for p in quoted)
        yield from run.emit(tail)
        cited = sorted({home.n, *(p.n for p in quoted)})
        rests_on = [(home.n, home.text)] + [(p.n, p.text) for p in quoted if p != home]
        yield run.finish(clean + tail, short=clean, cited=cited, rests_on=rests_on)

    def _span(self, run: _Run, messages: list[dict], evidence: list[str]) -> Iterator[str]:
        """The short answer's span of `evidence`, streamed: by the likelihood reader or greedy decoding (see
        `settings.answer.reader`)."""
        cfg = self.settings.answer
        hints = {"avoid_start": question_words(run.standalone), "answer_type": answer_type(run.standalone)}
        if cfg.reader == "likelihood" and self.llm.exposes_logits:
            run.extra["reader"] = "likelihood"
            best = span_candidates(self.llm, messages, evidence, prefix=SPAN_PREFIX, max_tokens=cfg.reader_max_tokens,
                                   starts=cfg.reader_starts, end_bias=cfg.reader_end_bias,
                                   length_power=cfg.reader_length_power, rank_penalty=cfg.reader_rank_penalty,
                                   near=content_words(run.standalone), proximity_weight=cfg.reader_proximity_weight,
                                   shape_weights=cfg.reader_shape_weights,
                                   **hints)
            if best:
                top = best[0]
                # How sure the reader is of its span, for refusal analysis (`rag eval answers --details`).
                run.extra["span"] = {"logprob": round(top.logprob, 4), "score": round(top.score, 4),
                                     "tokens": top.tokens, "opening": round(top.opening, 4)}
                yield top.text
            return
        run.extra["reader"] = "greedy" if self.llm.exposes_logits else "snapped"
        yield from stream_span(self.llm, messages, evidence, max_new_tokens=cfg.span_max_tokens, prefix=SPAN_PREFIX,
                               end_bias=cfg.span_end_bias, **hints)

    def _read(self, run: _Run, messages: list[dict], evidence: list[str], reader) -> str | None:
        """The trained reader's span of `evidence`, or None when it abstains.

        Every span starting at one of the likeliest first words and the reader's no-answer reply are scored in one
        pass by their whole log-probability. It abstains when log p(no answer) - log p(likeliest span) -
        relevance_weight * logit(relevance) exceeds the calibrated margin (`decision` in the adapter's card).
        Otherwise the answer is the best of the `SHAPED_SPANS` likeliest spans by `reshape_spans` (the card's
        `reading`): the reader's likelihood alone picks "2" over "2 million" or a phrase the question already says."""
        cfg = self.settings.answer
        candidates = span_candidates(self.llm, messages, evidence, prefix=SPAN_PREFIX,
                                     max_tokens=cfg.reader_max_tokens, starts=cfg.reader_starts,
                                     length_power=0.0, no_answer=NO_ANSWER)
        run.extra["reader"] = "trained"
        abstain = next((c for c in candidates if c.evidence_index < 0), None)
        spans = [c for c in candidates if c.evidence_index >= 0]
        if not spans:
            return None
        likeliest = spans[0]  # what the margin rule reads
        shapes = span_shapes(spans[:SHAPED_SPANS], evidence, run.standalone)
        best = spans[reshape_spans(spans[:SHAPED_SPANS], shapes, reader.reading, run.standalone)]
        margin = (abstain.logprob - likeliest.logprob) if abstain is not None else -math.inf
        logit = math.log(max(run.relevance, 1e-6) / max(1.0 - run.relevance, 1e-6))
        decision = reader.decision
        pressure = margin - float(decision.get("relevance_weight", 0.0)) * logit
        run.extra["span"] = {"logprob": round(best.logprob, 4), "score": round(best.score, 4), "tokens": best.tokens,
                             "opening": round(best.opening, 4),
                             "no_answer": round(abstain.logprob, 4) if abstain is not None else None,
                             "abstain": round(pressure, 4), "likeliest": likeliest.text,
                             # the candidates the span was chosen from, for refitting `reading` (reader_calibrate.py)
                             "candidates": [{"text": c.text, "logprob": round(c.logprob, 4), "tokens": c.tokens,
                                             **shape} for c, shape in zip(spans, shapes)]}
        if pressure > float(decision.get("margin", 0.0)):
            return None
        return best.text

    @staticmethod
    def _answer_home(run: _Run, span: str, kept: list[Passage]) -> tuple[Passage | None, bool]:
        """The passage the span comes from, and whether the span answers something (more than the question's
        own words)."""
        clean = clean_span(span)
        home = next((p for p in kept if clean and clean in p.text), None)
        return home, home is not None and answers_something(clean, run.standalone)

    def _explanation(self, run: _Run, evidence: list[Evidence]) -> list[Evidence]:
        """Up to `explain_sentences` supporting sentences for an open question, in reading order, without repeats.

        Candidates are ranked by how much they are about the question (`Evidence.topical`, not the answer-finding
        score) and kept within `evidence_margin` of the best; those from the best sentence's source come first (one
        section reads best), then the rest. Overlapping chunks repeat sentences: kept once; a sentence a chunk
        boundary cut is left out.
        """
        cfg = self.settings.answer
        whole = [e for e in evidence if not e.fragment]
        if cfg.explain_sentences < 2 or not whole:
            return []
        best = max(whole, key=lambda e: e.topical)
        floor = best.topical - cfg.evidence_margin
        pool = sorted((e for e in whole if e.topical >= floor), key=lambda e: (e.source != best.source, -e.topical))
        picked: list[Evidence] = []
        for candidate in pool:
            if len(picked) >= cfg.explain_sentences:
                break
            words = set(content_words(candidate.text))
            if len(words) < 3 or any(_similar(words, set(content_words(p.text))) for p in picked):
                continue
            picked.append(candidate)
        ordered = sorted(picked, key=_reading_order(run.sources))
        # A definition question's reply opens with the sentence that defines the term, wherever it stands.
        term = defined_term(run.standalone)
        definition = next((e for e in ordered if defines(e.text, term)), None) if term else None
        return [definition] + [e for e in ordered if e is not definition] if definition else ordered

    def _generative(self, run: _Run, evidence: list[Evidence]) -> Iterator[str | Answer]:
        cfg = self.settings.llm
        passages = [Passage(s.n, s.text, s.title) for s in run.sources]
        try:
            messages, kept = fit_passages(passages, lambda ps: generative_messages(run.standalone, ps),
                                          self.llm.count_prompt_tokens, self._budget(cfg.max_new_tokens))
        except ValueError as exc:
            raise self._no_room(exc, cfg.max_new_tokens) from exc
        pieces: list[str] = []
        for piece in self.llm.stream(messages, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature):
            pieces.append(piece)
            yield from run.emit(piece)
        reply = "".join(pieces).strip()
        if not reply or _DONT_KNOW.match(reply):
            yield run.finish(REFUSAL, refused=True, short="")
            return
        # Support is checked against the sentences of each cited source that bear on the question (within
        # `evidence_margin` of the best), so a reply copied from an unrelated sentence (e.g. a planted
        # instruction) counts as unsupported.
        bar = max(e.topical for e in evidence) - self.settings.answer.evidence_margin
        relevant = {p.n: [e.text for e in evidence if e.source == p.n and e.topical >= bar] for p in kept}
        checked, cited, ok = check_citations(reply, {n: " ".join(t) for n, t in relevant.items() if t},
                                             self.settings.answer.min_support)
        if ok:
            yield run.finish(checked, short=strip_citations(checked), cited=cited,
                             rests_on=resting_sentences(checked, relevant))
            return
        best = evidence[0]
        text = f'"{best.text}" [{best.source}]'
        yield run.finish(text, short=best.text, cited=[best.source], fallback=True, rests_on=[(best.source, best.text)])


def check_citations(reply: str, texts: dict[int, str], min_support: float) -> tuple[str, list[int], bool]:
    """Check every sentence of a generated reply against the sources it cites.

    A sentence citing nothing, or citing unknown numbers, is attributed to the source that supports it best (the
    citation is added). Returns the reply with citations fixed, the numbers cited, and whether every sentence is
    supported (support >= `min_support` by a source it cites).
    """
    out: list[str] = []
    cited: list[int] = []
    ok = True
    for sentence in split_sentences(reply):
        numbers = [n for n in cited_numbers(sentence) if n in texts]
        claim = strip_citations(sentence)
        if not content_words(claim):
            out.append(sentence)
            continue
        if numbers and max(support(claim, texts[n]) for n in numbers) >= min_support:
            pass
        else:
            scored = sorted(((support(claim, t), n) for n, t in texts.items()), reverse=True)
            if not scored or scored[0][0] < min_support:
                ok = False
                break
            numbers = [scored[0][1]]
            body = claim.rstrip(".!?")
            sentence = f"{body} [{numbers[0]}]."
        cited.extend(n for n in numbers if n not in cited)
        out.append(sentence)
    return " ".join(out), cited, ok


def resting_sentences(reply: str, sentences: dict[int, list[str]]) -> list[tuple[int, str]]:
    """The evidence sentence each claim of a checked reply rests on: for every sentence of `reply` and every source
    `n` it cites, the sentence of `sentences[n]` that supports it best (the first of equals). Returns (n, sentence)
    pairs in reply order, each once."""
    found: list[tuple[int, str]] = []
    for sentence in split_sentences(reply):
        claim = strip_citations(sentence)
        for n in cited_numbers(sentence):
            candidates = sentences.get(n) or []
            if not candidates:
                continue
            best = max(candidates, key=lambda text: support(claim, text))  # max keeps the first of equals
            if (n, best) not in found:
                found.append((n, best))
    return found


# -- helpers ----------------------------------------------------------------------------------------------------------
def _reading_order(sources: list[Source]) -> Callable[[Evidence], tuple]:
    """A sort key that puts sentences in the order a reader meets them: a file's sentences together (files in the
    order of their best-ranked chunk), then by page, line and place in the chunk; not by retrieval rank, which would
    put a later paragraph's "The trick works for any …" before the definition it follows."""
    by_n = {s.n: s for s in sources}
    first_rank: dict[str, int] = {}
    for s in sorted(sources, key=lambda s: s.n):
        first_rank.setdefault(s.source, s.n)

    def key(e: Evidence) -> tuple:
        source = by_n.get(e.source)
        if source is None:
            return len(sources) + 1, 0, 0, 0, e.source
        first_line = source.lines.split("-")[0] if source.lines else ""
        located = find_span(e.text, source.text)
        offset = located[0] if located else 0
        # The sentence's own line: overlapping chunks of one file start on different lines.
        line = int(first_line) + source.text.count("\n", 0, offset) if first_line.isdigit() else 0
        return first_rank[source.source], source.page or 0, line, offset, e.source

    return key


class _Run:
    """Book-keeping of one question: timings, streamed text, and the final Answer."""

    def __init__(self, service: AnswerService, question: str):
        self.service = service
        self.question = question
        self.standalone = question
        self.relevance = 0.0  # the refusal rule's probability that the evidence answers (`grounding.relevance`)
        self.sources: list[Source] = []
        self.timings = Timings()
        self.extra: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.streamed: list[str] = []

    def elapsed(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def emit(self, piece: str) -> Iterator[str]:
        if piece:
            if self.timings.first_token_ms is None:
                self.timings.first_token_ms = self.elapsed()
            self.streamed.append(piece)
            yield piece

    def refuse(self) -> Iterator[str | Answer]:
        """The refusal, streamed, then its Answer (no sources: nothing is cited)."""
        yield from self.emit(REFUSAL)
        yield self.finish(REFUSAL, refused=True, short="")

    def finish(self, text: str, *, refused: bool = False, short: str = "", cited: Sequence[int] = (),
               fallback: bool = False, rests_on: Sequence[tuple[int, str]] = ()) -> Answer:
        """The final Answer; `rests_on` holds (source number, sentence) pairs, located as the sources' `cited_spans`.

        The final text is authoritative: the streamed pieces may differ from it in trimmed punctuation.
        """
        self.timings.total_ms = self.elapsed()
        for source in self.sources:
            source.cited = source.n in cited
            source.cited_spans = []
        for n, sentence in rests_on:
            if 1 <= n <= len(self.sources):
                source = self.sources[n - 1]
                span = find_span(sentence, source.text)
                if span is not None and span not in source.cited_spans:
                    source.cited_spans.append(span)
        return Answer(text=text, refused=refused, sources=[] if refused else self.sources, timings=self.timings,
                      model=getattr(self.service.llm, "name", "unknown"), question=self.question,
                      standalone_question=self.standalone, short=short, fallback=fallback, extra=self.extra)


_LIST_ITEM = re.compile(r"^\s*(?:[-*•▪‣]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s+(\S.*?)\s*$")


def list_items(sentence: str, text: str, limit: int = 10) -> list[str]:
    """The items of the list a sentence introduces ("... the following steps:", "three key stages:") in its chunk's
    `text`: the bulleted or numbered lines right after it, or the "Term: definition" lines; [] for any other
    sentence."""
    if not sentence.rstrip().endswith(":"):
        return []
    located = find_span(sentence, text)
    if located is None:
        return []
    items: list[str] = []
    for line in text[located[1]:].split("\n")[1:]:
        if not line.strip():
            if items:
                break
            continue
        found = _LIST_ITEM.match(line)
        if not found:
            break
        items.append(found.group(1))
        if len(items) >= limit:
            break
    return items


def _with_citation(sentence: str, n: int) -> str:
    """`A sentence. ` -> `A sentence [n].` (the marker inside the full stop, as the short answer has it)."""
    body = sentence.strip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?').rstrip()} [{n}]{end}"


def _similar(a: set[str], b: set[str]) -> bool:
    """Near-duplicate sentences (overlapping chunks, repeated boilerplate): most of the words of each shared. A short
    sentence whose few words a longer one also has says something else ("Classifier-free guidance removes that
    need." beside the sentence defining it)."""
    return bool(a and b) and len(a & b) / max(len(a), len(b)) >= 0.8
