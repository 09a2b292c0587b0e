"""Extractive answers: the short answer is a verbatim span of the evidence sentences, never free text.

- `stream_span(llm, messages, evidence, ...)`: the span, streamed. With an LM that shows its logits
  (`llm.exposes_logits`), decoding is constrained (`SpanConstraint`): every token must extend a verbatim token run of
  an evidence text, so the answer is grounded by construction. Other LMs (an OpenAI-compatible server, the scripted
  fake) generate freely, and the reply is snapped onto the evidence (`snap_to_evidence`).
- `answer_type` and `fits_answer_type`: the kind of answer a question asks for ("number", "date", "name"), which
  steers the span's first word.
- `question_words`, `clean_span`, `answers_something`: what the service checks of a span before it answers with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag_app.errors import RagError
from rag_app.text import STOPWORDS, content_words, word_tokens

Message = dict[str, str]

# Words an extracted answer span never starts with (prepositions, conjunctions, auxiliaries, relatives).
_NO_START = frozenset("of to in on at by for from with into onto as than that which who whom whose whereas while and "
                      "or but nor so is are was were be been being has have had do does did can could will would shall "
                      "should may might must , . ; : ) ]".split())

_MONTHS = frozenset("january february march april may june july august september october november december".split())
_NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                          "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
                          "hundred thousand million billion trillion dozen half first second third fourth fifth sixth "
                          "seventh eighth ninth tenth".split())
# Words a snapped span does not end with.
_EDGE_WORDS = _NO_START | STOPWORDS
# Penalty (logits) on the first word of a span that does not fit the expected answer type.
_TYPE_PENALTY = {"number": 8.0, "date": 5.0, "name": 3.0}
# Marks a tokenizer puts at the start of a token that begins a new word (GPT-2 style, SentencePiece, plain).
_WORD_START = ("Ġ", "▁", " ")

_NUMBER_Q = re.compile(r"\bhow\s+(many|much|long|old|far|big|large|tall|high|fast|often|deep|wide|heavy)\b|"
                       r"\b(what|which)\s+(percentage|percent|proportion|number|amount|population|size|age)\b", re.I)
_DATE_Q = re.compile(r"^\W*when\b|\b(what|which|in\s+what|in\s+which)\s+(year|years|century|decade|date|month|day|"
                     r"time\s+period|era)\b|\bwhen\s+(did|was|were|is|does|do|had|will)\b", re.I)
_NAME_Q = re.compile(r"^\W*(who|whom|whose)\b|^\W*where\b|\b(who|whom)\s+(was|is|were|did|had|has)\b|"
                     r"^\W*(in\s+)?(what|which)\s+(city|country|state|nation|county|town|region|continent|company|"
                     r"organi[sz]ation|team|club|university|college|river|mountain|island|ocean|sea|language|party|"
                     r"person|man|woman|king|queen|president|emperor|author|scientist|mission|ship|station|"
                     r"province|church|army|empire|dynasty|family|group|newspaper|network|station)\b", re.I)


# -- the span, streamed -----------------------------------------------------------------------------------------------
def stream_span(llm, messages: Sequence[Message], evidence: Sequence[str], *, max_new_tokens: int = 24,
                prefix: str = "", end_bias: float = 0.0, avoid_start: Sequence[str] = (),
                answer_type: str | None = None) -> Iterator[str]:
    """Yield an answer that is a verbatim span of one of the `evidence` texts.

    Args:
        llm: the LM; constrained decoding when it exposes logits, else generate-then-snap.
        messages: the prompt (the span prompt of `rag_app.services.prompting`).
        evidence: the texts the span may come from.
        max_new_tokens: cap on the span's tokens.
        prefix: text that starts the assistant reply (e.g. "Answer:").
        end_bias: added to the logits of ending the span (> 0 favours shorter answers).
        avoid_start: the question's own words; a span rarely starts by repeating the question.
        answer_type: "number", "date" or "name" steers the span's first word towards one that fits the question.

    A constrained span that ends by running out of tokens may stop inside a word; `clean_span` trims the ends. The
    snapped reply of an LM without logits yields nothing when no word of it occurs in the evidence.
    """
    if llm.exposes_logits:
        constraint = SpanConstraint(llm, evidence, end_bias=end_bias, avoid_start=avoid_start,
                                    answer_type=answer_type)
        yield from llm.decode(messages, constraint, max_new_tokens=max_new_tokens, prefix=prefix)
        return
    reply = llm.generate(messages, max_new_tokens=max_new_tokens, stop=("\n",), prefix=prefix)
    span = snap_to_evidence(reply, evidence, avoid=avoid_start)
    if span:
        yield span


class SpanConstraint:
    """A `choose_next` for `LLM.decode`: greedy decoding where every step may only extend a verbatim token run of an
    evidence text.

    Spans start and end at word boundaries; decoding stops when the model prefers an end token (end of turn,
    newline, or punctuation that does not continue the span) or when the span cannot grow. The first token is steered
    away from function words and the question's own words, and towards the expected answer type. One instance
    decodes one span (it keeps the span's possible positions in the evidence).
    """

    def __init__(self, llm, evidence: Sequence[str], *, end_bias: float = 0.0, avoid_start: Sequence[str] = (),
                 answer_type: str | None = None):
        flat: list[int] = []
        for text in evidence:
            if text.strip():
                flat.extend(llm.tokenize(" " + text.strip()))
                flat.append(-1)  # a span never crosses from one evidence text into the next
        strings = iter(llm.token_strings([t for t in flat if t >= 0]))
        self.flat = flat
        self.tokens = [next(strings) if t >= 0 else "" for t in flat]
        self.starts_word = {tid: tok.startswith(_WORD_START) or not tok[:1].isalnum()
                            for tid, tok in zip(flat, self.tokens) if tid >= 0}
        self.end_ids = llm.stop_ids() | set(llm.tokenize("\n")[-1:])
        self.punct_ids = {tid for tid, tok in zip(flat, self.tokens) if tid >= 0 and tok in {".", ",", ";", ":", ")"}}
        self.end_bias = end_bias
        self.first_penalty = self._first_penalties({w.lower() for w in avoid_start if len(w) >= 3}, answer_type)
        self.positions: list[int] | None = None  # where in `flat` the span so far may end; None before the first

    def _first_penalties(self, avoid: set[str], answer_type: str | None) -> dict[int, float]:
        """Logit penalty of each token as the span's first: it depends on the token's position (the whole word, for
        the answer type), so a token starting both a fitting and an unfitting word takes the smaller penalty."""
        flat, tokens = self.flat, self.tokens
        type_penalty = _TYPE_PENALTY.get(answer_type or "", 0.0)
        penalties: dict[int, float] = {}
        for i, (tid, tok) in enumerate(zip(flat, tokens)):
            if tid < 0 or not self.starts_word.get(tid):
                continue
            word = tok.lstrip("Ġ▁ ").lower()
            if word in _NO_START:
                penalty = 100.0  # never start an answer with "of", "which", "was", ...
            elif len(word) >= 3 and any(w.startswith(word) or word.startswith(w) for w in avoid):
                penalty = 2.0
            else:
                penalty = 0.0
            if type_penalty:
                whole = tok.lstrip("Ġ▁ ")
                j = i + 1
                while j < len(flat) and flat[j] >= 0 and tokens[j][:1].isalnum() and not self.starts_word.get(flat[j]):
                    whole += tokens[j]
                    j += 1
                if not fits_answer_type(whole, answer_type):
                    penalty += type_penalty
            penalties[tid] = min(penalties.get(tid, penalty), penalty)
        return penalties

    def _boundary_after(self, p: int) -> bool:
        """May a span end after position p? At the end of a text, or before a space or punctuation that is not inside
        a number ("250,000", "3.5")."""
        flat, tokens = self.flat, self.tokens
        if p + 1 >= len(flat) or flat[p + 1] < 0:
            return True
        nxt = tokens[p + 1]
        if nxt.startswith(_WORD_START):
            return True
        if nxt[:1].isalnum():
            return False
        inside_number = (nxt in {",", "."} and tokens[p][-1:].isdigit()
                         and p + 2 < len(flat) and tokens[p + 2][:1].isdigit())
        return not inside_number

    def __call__(self, logits: np.ndarray, generated: list[int]) -> int | None:
        flat, positions = self.flat, self.positions
        if positions is None:  # first token: any word start of the evidence
            candidates = {i: flat[i] for i in range(len(flat)) if flat[i] >= 0 and self.starts_word.get(flat[i])}
        else:
            candidates = {p + 1: flat[p + 1] for p in positions if p + 1 < len(flat) and flat[p + 1] >= 0}
        allowed = set(candidates.values())
        can_end = positions is not None and any(self._boundary_after(p) for p in positions)
        enders = (self.end_ids | self.punct_ids) if can_end else set()
        options = sorted(allowed | enders)
        if not options:
            return None
        index = np.asarray(options, dtype=np.int64)
        scores = np.array(logits[index], dtype=np.float32)  # (len(options),)
        if positions is None:
            scores -= np.asarray([self.first_penalty.get(t, 0.0) for t in options], dtype=np.float32)
        if self.end_bias and enders:
            scores += np.asarray([self.end_bias if t in enders and t not in allowed else 0.0 for t in options],
                                 dtype=np.float32)
        token = int(index[int(np.argmax(scores))])  # the first of equal maxima, as torch.argmax
        if token not in allowed:
            return None  # the model chose to end the span
        self.positions = [p for p, t in candidates.items() if t == token]
        return token


@dataclass(frozen=True)
class SpanCandidate:
    """A verbatim span of an evidence text scored as the answer by the LM's likelihood."""

    text: str
    evidence_index: int  # which evidence text it comes from
    tokens: int
    logprob: float  # log p(span tokens, then the end of the reply | prompt)
    penalty: float  # the first word's penalty (function word, question word, answer type)
    score: float  # (logprob - penalty) / (tokens + 1) ** length_power, minus the evidence-rank penalty
    start: int = 0  # token position of its first word in the evidence (the texts' tokens laid end to end)
    opening: float = 0.0  # its first word's log-probability minus the penalty: how the starts were picked
    end_logprob: float = 0.0  # log p(the end of the reply | span), included in `logprob`
    start_rank: int = 0  # the rank of its first word among the starts tried (0: the likeliest)


def span_candidates(llm, messages: Sequence[Message], evidence: Sequence[str], *, prefix: str = "",
                    max_tokens: int = 16, starts: int = 12, end_bias: float = 0.0, avoid_start: Sequence[str] = (),
                    answer_type: str | None = None, length_power: float = 0.5, rank_penalty: float = 0.0,
                    near: Sequence[str] = (), proximity_weight: float = 0.0,
                    shape_weights: Sequence[float] = (0.0, 0.0, 0.0, 0.0), no_answer: str = ""
                    ) -> list[SpanCandidate]:
    """Every span of the evidence that starts at one of the `starts` likeliest first words, scored by the LM.

    The prompt runs once; the continuations (each candidate start's text up to `max_tokens` tokens) run in one batch
    against its KV cache, so every end point of every start is scored by the same pass: the log-probability of the
    span's tokens and then of ending the reply, length-normalised, with the answer-type and question-word penalties
    of the greedy constraint on the first word. With `proximity_weight`, a span far from every word of `near` (the
    question's content-word stems) in its sentence loses proximity_weight * log(1 + distance in words): an answer
    usually stands next to what the question mentions ("hours: 11" for "how many hours"). `shape_weights` add, in
    order: × the span's tokens' log-probability / (tokens + 1), × the share of its content words that the question has (an
    answer says something new), + when it starts with an article (a whole noun phrase), × log(tokens + 1).
    With `no_answer` (the trained reader's reply for evidence that does not answer), that reply is scored in the same
    pass and returned among the candidates with `evidence_index` -1, its score its whole log-probability.
    Returns the candidates best first.
    """
    mean_weight, asked_weight, article_weight, length_weight = shape_weights
    asked = set(near)
    table = SpanConstraint(llm, evidence, end_bias=end_bias, avoid_start=avoid_start, answer_type=answer_type)
    flat = table.flat
    # The constraint lays out only the non-blank texts: map each token position back to its text's own index.
    kept = [k for k, text in enumerate(evidence) if text.strip()]
    owner, index = [], 0
    for tid in flat:
        owner.append(kept[index])
        index += tid < 0
    with llm.continuations(messages, prefix=prefix, reserve=max_tokens) as run:
        first = run.first_logprobs
        opening = [(float(first[flat[i]]) - table.first_penalty.get(flat[i], 0.0), i) for i in range(len(flat))
                   if flat[i] >= 0 and table.starts_word.get(flat[i]) and table.first_penalty.get(flat[i], 0.0) < 50]
        # Best opening first; among equal openings (the same token at several places) the earlier place, i.e. the
        # better-ranked text, so a repeated word does not spend the starts on the lowest-ranked sentences.
        picked = [i for _, i in sorted(opening, key=lambda o: (-o[0], o[1]))[:starts]]
        conts = []
        for i in picked:
            stop = next((j for j in range(i, min(len(flat), i + max_tokens)) if flat[j] < 0), min(len(flat), i + max_tokens))
            conts.append(flat[i:stop])
        abstain = llm.tokenize(" " + no_answer) if no_answer else []
        scored = run.score(conts + ([abstain] if abstain else []), table.end_ids | table.punct_ids) \
            if conts or abstain else []
    found: dict[tuple[int, int], SpanCandidate] = {}
    if abstain:
        token_lp, end_lp = scored.pop()
        logprob = float(token_lp.sum() + end_lp[-1])
        found[(-1, -1)] = SpanCandidate(no_answer, -1, len(abstain), logprob, 0.0, logprob, -1, float(token_lp[0]),
                                        float(end_lp[-1]), -1)
    nearby: dict[int, _NearWords] = {}  # evidence index -> its words, stemmed once for the proximity term
    for start_rank, (i, cont, (token_lp, end_lp)) in enumerate(zip(picked, conts, scored)):
        penalty = table.first_penalty.get(flat[i], 0.0)
        running = np.cumsum(token_lp)
        for t in range(len(cont)):
            if not table._boundary_after(i + t):
                continue
            logprob = float(running[t] + end_lp[t])
            score = (logprob + end_bias - penalty) / (t + 2) ** length_power - rank_penalty * owner[i]
            text = llm.detokenize(cont[: t + 1]).strip()
            # A byte-level tokenizer may cut a character in two ("10⁻¹⁰" -> "10⁻¹\ufffd"), a normalising one may
            # respell it: only a verbatim substring of its text is a candidate (the answer must be quotable).
            if not text or text not in evidence[owner[i]]:
                continue
            if proximity_weight and near:
                if owner[i] not in nearby:
                    nearby[owner[i]] = _NearWords(evidence[owner[i]], set(near))
                score -= proximity_weight * math.log1p(nearby[owner[i]].distance(text))
            words = content_words(text)
            score += (mean_weight * float(running[t]) / (t + 2) + length_weight * math.log(t + 2)
                      + (asked_weight * sum(w in asked for w in words) / len(words) if words else 0.0)
                      + (article_weight if text.split()[0].lower() in {"the", "a", "an"} else 0.0))
            found[(i, t)] = SpanCandidate(text, owner[i], t + 1, logprob, penalty, score, i,
                                          float(token_lp[0]) - penalty, float(end_lp[t]), start_rank)
    return sorted(found.values(), key=lambda c: -c.score)


#: How many of the trained reader's likeliest spans `reshape_spans` chooses among (the ones recorded for its fit).
SHAPED_SPANS = 12


def span_shapes(spans: Sequence[SpanCandidate], evidence: Sequence[str], question: str) -> list[dict[str, float]]:
    """What `reshape_spans` weighs besides the likelihood, for each span (of `evidence[span.evidence_index]`): the
    share of its content words that the question has ("asked"), log(1 + the words between it and the nearest
    question word in its sentence) ("far") and log(1 + its sentence's place among the offered ones, ranker order)
    ("rank"). The question's words and each sentence's are read once."""
    near = set(content_words(question))
    sentences: dict[int, _NearWords] = {}
    shapes = []
    for span in spans:
        if span.evidence_index not in sentences:
            sentences[span.evidence_index] = _NearWords(evidence[span.evidence_index], near)
        words = content_words(span.text)
        shapes.append({"asked": round(sum(w in near for w in words) / len(words), 4) if words else 0.0,
                       "far": round(math.log1p(sentences[span.evidence_index].distance(span.text)), 4),
                       "rank": round(math.log1p(span.evidence_index), 4)})
    return shapes


#: What `span_features` gives of each span, the names a card's `reading` weighs.
SPAN_FEATURES = ("logprob", "normalised_logprob", "log_tokens", "asked", "far", "rank", "misfit", "repeats",
                 "holds_others", "function_start", "capitalised", "punctuated")
# Function words that open a span which usually says more than the answer ("the south-east of Australia").
_OPENING_FUNCTION_WORDS = frozenset("the a an of in on and to for by with his her its their as at".split())


def span_features(spans: Sequence[SpanCandidate], shapes: Sequence[dict[str, float]], question: str,
                  length_power: float = 0.0) -> list[dict[str, float]]:
    """Everything `reshape_spans` weighs, for each span: its log-likelihood, raw ("logprob") and per token
    ("normalised_logprob", divided by (tokens + 1) ** length_power), log(1 + tokens), the shapes of `span_shapes`
    (asked, far, rank), and what its text says of it next to the others: its first word does not fit the question's
    answer type ("misfit"), log of how many of the spans have its very text ("repeats", one per sentence it is read
    from), log(1 + how many of the other spans it holds, each as often as read) ("holds_others"), it opens with a
    function word, a capital, it holds a comma or semicolon. The weights are fitted together (a sign alone says
    little: "misfit" and "capitalised" share the work). Reads only the spans' text, log-probability and token count,
    so the recorded candidates of `bench/reader_calibrate.py` give the same features as a live answer."""
    kind = answer_type(question) if question else None
    texts = [c.text for c in spans]
    features = []
    for span, shape in zip(spans, shapes):
        text = span.text
        first = (text.split() or [""])[0]
        features.append({
            "logprob": span.logprob,
            "normalised_logprob": span.logprob / (span.tokens + 1) ** length_power,
            "log_tokens": math.log1p(span.tokens),
            "asked": shape.get("asked", 0.0), "far": shape.get("far", 0.0), "rank": shape.get("rank", 0.0),
            "misfit": 0.0 if not kind or fits_answer_type(first, kind) else 1.0,
            "repeats": math.log(max(1, texts.count(text))),
            "holds_others": math.log1p(sum(1 for t in texts if t != text and t in text)),
            "function_start": 1.0 if first.lower() in _OPENING_FUNCTION_WORDS else 0.0,
            "capitalised": 1.0 if text[:1].isupper() else 0.0,
            "punctuated": 1.0 if re.search(r"[,;]", text) else 0.0,
        })
    return features


def reading_weights(reading: dict) -> dict[str, float]:
    """The weight of each of `span_features` in a card's `reading`: its `weights`, or, for a card of the older
    form, the per-token log-likelihood plus asked_weight * asked - proximity_weight * far - rank_weight * rank."""
    if "weights" in reading:
        unknown = sorted(set(reading["weights"]) - set(SPAN_FEATURES))
        if unknown:
            raise RagError(f"the reader card's reading weighs unknown span features {unknown} (known: "
                           f"{', '.join(SPAN_FEATURES)}); refit it with `python bench/reader_calibrate.py fit-spans`")
        return {name: float(w) for name, w in reading["weights"].items()}
    return {"normalised_logprob": 1.0, "asked": float(reading.get("asked_weight", 0.0)),
            "far": -float(reading.get("proximity_weight", 0.0)), "rank": -float(reading.get("rank_weight", 0.0))}


def reshape_spans(spans: Sequence[SpanCandidate], shapes: Sequence[dict[str, float]], reading: dict,
                  question: str = "") -> int:
    """The index of the best span by the weighted sum of its `span_features`, with `reading` the card's fitted
    weights (none: the likeliest; the first among equal scores)."""
    weights = reading_weights(reading)
    features = span_features(spans, shapes, question, float(reading.get("length_power", 0.0)))
    scores = [sum(w * f[name] for name, w in weights.items()) for f in features]
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


class _NearWords:
    """The words of one evidence text, stemmed once, marked when their stem is one of the question's (`near`)."""

    def __init__(self, text: str, near: set[str]):
        self.text = text
        self.words = [(m.start(), m.end(), (content_words(m.group()) or [""])[0] in near)
                      for m in re.finditer(r"\w+", text)]

    def distance(self, span: str, none: int = 10) -> int:
        """Words between `span` (its first place in the text) and the closest marked word outside it: 1 for a
        neighbour; `none` when there is no such word."""
        at = self.text.find(span)
        if at < 0:
            return none
        before = [w for w in self.words if w[0] < at]  # a word the span's first place cuts counts on both sides
        after = [w for w in self.words if w[1] > at + len(span)]
        gaps = [len(before) - k for k, w in enumerate(before) if w[2]] + [k + 1 for k, w in enumerate(after) if w[2]]
        return min(gaps, default=none)


def snap_to_evidence(reply: str, evidence: Sequence[str], avoid: Sequence[str] = ()) -> str:
    """The run of consecutive words of `reply` that occurs verbatim (case-insensitively) in an evidence text and
    says the most that the question does not: most words outside `avoid` (the question's words) and the stopwords,
    then the longest.

    A model without constrained decoding tends to answer in a sentence that repeats the question ("Melbourne is the
    sporting capital of Australia" for "What city is called the sporting capital of Australia?"): the longest
    verbatim run is then often the repeated part, while the answer is the run with a new word ("Melbourne").
    Function words at the ends of the run ("Melbourne is") are trimmed.

    Returns the evidence's own spelling of that run, or "" when no word of the reply occurs in the evidence.
    """
    words = word_tokens(reply)
    asked = {w.lower() for w in avoid}
    best, best_key = "", (-1, -1)
    for text in evidence:
        lowered = text.lower()
        for start in range(len(words)):
            for end in range(len(words), start, -1):
                run = words[start:end]
                while len(run) > 1 and run[-1].lower() in _EDGE_WORDS:
                    run = run[:-1]
                while len(run) > 1 and run[0].lower() in _NO_START:
                    run = run[1:]
                new = sum(1 for w in run if w.lower() not in asked and w.lower() not in STOPWORDS and w[:1].isalnum())
                key = (new, len(run))
                if key <= best_key:
                    continue
                pattern = r"\s*".join(re.escape(w.lower()) for w in run)
                match = re.search(r"(?<!\w)" + pattern + r"(?!\w)", lowered)
                if match and match.group(0).strip():
                    best, best_key = text[match.start():match.end()], key
                    break  # the longest match from this start; shorter ones cannot say more
    return best.strip()


# -- answer types -----------------------------------------------------------------------------------------------------
def answer_type(question: str) -> str | None:
    """The kind of answer a question asks for: "number" (how many / how much), "date" (when / what year), "name"
    (who / where: a capitalised name), or None."""
    if _NUMBER_Q.search(question):
        return "number"
    if _DATE_Q.search(question):
        return "date"
    if _NAME_Q.search(question):
        return "name"
    return None


def fits_answer_type(word: str, answer_type: str | None) -> bool:
    """Does a span starting with `word` fit the answer type ("number", "date", "name"; None fits anything)?"""
    if not answer_type:
        return True
    bare = word.strip(" \t\"'“”‘’([")
    low = bare.lower()
    numeric = bool(re.search(r"\d", bare)) or low in _NUMBER_WORDS or low.rstrip("s") in _NUMBER_WORDS
    if answer_type == "number":  # a count or an amount: a bare year ("1964") rarely answers "how many"
        return numeric and not re.fullmatch(r"(1[5-9]|20)\d\d", bare)
    if answer_type == "date":
        return numeric or low in _MONTHS or low in {"early", "late", "mid", "spring", "summer", "autumn", "winter"}
    if answer_type == "name":
        return bool(bare[:1].isupper()) or bool(re.search(r"\d", bare))
    return True


# -- checks on a span -------------------------------------------------------------------------------------------------
def question_words(question: str) -> list[str]:
    """The question's meaningful words, as written (lower-cased)."""
    return [w.lower() for w in re.findall(r"[^\W_]+", question) if w.lower() not in STOPWORDS]


def clean_span(span: str) -> str:
    """Trim punctuation and unbalanced brackets or quotes at the ends of an extracted span."""
    span = span.strip().strip(",;:").strip()
    for opening, closing in (("(", ")"), ("[", "]"), ('"', '"'), ("“", "”")):
        if opening == closing:
            if span.count(opening) % 2:
                span = span.replace(opening, "", 1) if span.startswith(opening) else span.rstrip(opening)
        elif span.count(opening) != span.count(closing):
            span = span.strip(opening + closing)
            while span.count(opening) > span.count(closing):  # "mixture of experts (MoE": cut before it
                span = span[: span.rindex(opening)]
    return span.strip().rstrip(",;:").strip()


def answers_something(span: str, question: str) -> bool:
    """A span that only repeats the question's words (or has no words at all) answers nothing."""
    words = content_words(span)
    if not words:
        return bool(re.search(r"\d", span))
    asked = set(content_words(question))
    return any(w not in asked for w in words)
