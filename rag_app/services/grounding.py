"""Grounding: find the sentences of the retrieved chunks that support an answer, and check that an answer is supported.

Everything here is plain text processing plus the embedder; no LM. The answer service uses it three ways:
- `rank_evidence`: the question's best supporting sentences across the retrieved chunks, each tied to its numbered
  source. A small linear ranker (`SentenceWeights`): embedding cosine of question and sentence, overlap of the
  question's content words, the rank of its chunk in the retrieval and in BM25, its length, whether it holds a
  word of the kind the question asks for (a number for "how many", a date for "when", a name for "who"), and two
  context terms: the question's words in the sentence and its neighbours, and the cosine of the sentence read with
  the one before it (a sentence that continues its predecessor, "It was founded in 1842.", answers through it);
- `support`: how well a claim (an answer sentence) is backed by a text, used to check every generated sentence
  against the source it cites;
- the refusal signal: when even the best sentence is weak support, the documents don't say.

Words, stopwords and sentences come from `rag_app.text`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag_app.services.extractive import answer_type, fits_answer_type
from rag_app.text import content_words, split_sentences


def support(claim: str, text: str) -> float:
    """Fraction of the claim's content words found in `text` (1.0 for a claim with no content words)."""
    claim_words = content_words(claim)
    if not claim_words:
        return 1.0
    available = set(content_words(text))
    return sum(w in available for w in claim_words) / len(claim_words)


@dataclass
class Evidence:
    """A sentence of a retrieved chunk, scored as support for the question."""

    text: str
    source: int  # 1-based number of the source (the hit) it comes from
    score: float  # combined score (`SentenceWeights`), used for ranking and for the margins of what is offered
    cosine: float  # embedding similarity of question and sentence
    overlap: float  # share of the question's (IDF-weighted) content words found in the sentence and its chunk title
    fragment: bool = False  # the piece of a sentence a chunk boundary cut: its chunk opens with it, in lower case
    window_overlap: float = 0.0  # `overlap` over the sentence and its neighbours in the chunk (no title)
    context_cosine: float = 0.0  # cosine of the question to the sentence read with the one before it

    @property
    def topical(self) -> float:
        """How much the sentence is about the question (cosine + overlap), whatever it answers: what an explanation
        is built from."""
        return self.cosine + self.overlap


@dataclass(frozen=True)
class SentenceWeights:
    """The sentence ranker: score = cosine + the sum of these weights times their features (the fitted values are
    the defaults of `settings.answer.sentence_weights`)."""

    overlap: float  # × the IDF-weighted share of the question's words in the sentence and its title
    chunk_rank: float  # × 1 / the rank of the sentence's chunk in the retrieval
    lexical_rank: float  # × 1 / the chunk's BM25 rank (0 when BM25 did not find it, as in dense-only retrieval)
    length: float  # × log(1 + words): a longer sentence says more
    answer_type: float  # the sentence holds a word of the asked-for kind that is not in the question
    window_overlap: float = 0.0  # × the overlap over the sentence and its neighbours in its chunk
    context_cosine: float = 0.0  # × the cosine of the question to the sentence's and its predecessor's mean vector


_TOKEN = re.compile(r"[\w'’-]+")


def holds_answer_type(sentence: str, kind: str | None, asked: set[str]) -> bool:
    """Does the sentence hold a word of `kind` ("number", "date", "name"; see `answer_type`) that the question
    (lower-cased words `asked`) does not? A capitalised first word is not a name."""
    if not kind:
        return False
    return any(fits_answer_type(t, kind) and t.lower() not in asked
               for i, t in enumerate(_TOKEN.findall(sentence)) if kind != "name" or i > 0)


def _idf_weights(question_words: list[str], documents: Sequence[set[str]]) -> dict[str, float]:
    n = len(documents)
    return {w: math.log(1 + (n + 1) / (1 + sum(w in d for d in documents))) for w in set(question_words)}


def rank_evidence(question: str, hits: Sequence, embedder, *, weights: SentenceWeights,
                  max_sentences: int = 64) -> list[Evidence]:
    """Score every sentence of the retrieved chunks as support for the question; best first.

    Args:
        question: the (standalone) question.
        hits: retrieved chunks, best first; sentence i of hit j is cited as source j+1.
        embedder: embeds the question and the sentences (question and sentences share one batch).
        weights: the ranker's weights (`SentenceWeights`).
        max_sentences: cap on sentences embedded (from the best hits first), to bound latency.

    Returns:
        Evidence for each sentence, sorted by combined score, best first.
    """
    items: list[tuple[int, str, str]] = []  # (source number, sentence, title)
    sentence_words: list[set[str]] = []  # content words of the sentence and its chunk's title
    windows: list[set[str]] = []  # content words of the sentence and its neighbours in the same chunk
    follows: list[bool] = []  # the item before it is the previous sentence of the same chunk
    cut: set[int] = set()  # items that open their chunk mid-sentence
    for number, hit in enumerate(hits, start=1):
        title = str((hit.metadata or {}).get("title") or "")
        title_words = set(content_words(title.replace("_", " ")))
        sentences = split_sentences(hit.text)
        words = [content_words(sentence) for sentence in sentences]
        for index, sentence in enumerate(sentences):
            if index == 0 and sentence[:1].islower() and hit.text.lstrip()[:1].islower():
                cut.add(len(items))
            items.append((number, sentence, title))
            sentence_words.append(set(words[index]) | title_words)
            windows.append({w for ws in words[max(index - 1, 0):index + 2] for w in ws})
            follows.append(index > 0)
    items = items[:max_sentences]
    if not items:
        return []
    vectors = embedder.embed([question] + [sentence for _, sentence, _ in items])
    q_vec, s_vecs = vectors[0], vectors[1:]
    cosines = s_vecs @ q_vec  # (S,)
    # The sentence read with its predecessor: the mean of the two unit vectors (no second embedding pass).
    previous = np.concatenate([np.zeros_like(s_vecs[:1]), s_vecs[:-1]])
    paired = s_vecs + previous * np.array(follows[:len(items)], dtype=s_vecs.dtype)[:, None]
    context_cosines = (paired @ q_vec) / np.maximum(np.linalg.norm(paired, axis=1), 1e-12)
    q_words = content_words(question)
    sentence_words = sentence_words[:len(items)]
    idf = _idf_weights(q_words, sentence_words)
    asked_words = set(q_words)
    total = sum(idf[w] for w in asked_words) or 1.0

    def share(words: set[str]) -> float:  # IDF-weighted share of the question's words in `words`
        return sum(idf[w] for w in asked_words if w in words) / total

    kind = answer_type(question)
    asked = {t.lower() for t in _TOKEN.findall(question)}
    ranked = []
    for item, (number, sentence, _) in enumerate(items):
        cosine, context_cosine = float(cosines[item]), float(context_cosines[item])
        overlap, window_overlap = share(sentence_words[item]), share(windows[item])
        lexical_rank = (getattr(hits[number - 1], "extra", None) or {}).get("lexical_rank")
        score = (cosine + weights.overlap * overlap + weights.chunk_rank / number
                 + (weights.lexical_rank / lexical_rank if lexical_rank else 0.0)
                 + weights.length * math.log1p(len(_TOKEN.findall(sentence)))
                 + weights.answer_type * holds_answer_type(sentence, kind, asked)
                 + weights.window_overlap * window_overlap + weights.context_cosine * context_cosine)
        ranked.append(Evidence(sentence, number, score, cosine, overlap, fragment=item in cut,
                               window_overlap=window_overlap, context_cosine=context_cosine))
    ranked.sort(key=lambda e: e.score, reverse=True)
    return ranked


def offered_evidence(evidence: Sequence[Evidence], count: int, margin: float) -> list[Evidence]:
    """The sentences offered to the reader: the best `count` whose topic score (cosine + overlap) is within `margin`
    of the best one. An unrelated sentence (a planted instruction) is never offered, whatever the ranker's other
    terms (chunk rank, length) give it. The training data (`rag_app.training.data`) is offered the same way."""
    if not evidence:
        return []
    floor = max(e.topical for e in evidence) - margin
    return [e for e in evidence[:count] if e.topical >= floor] or list(evidence[:1])


@dataclass
class Relevance:
    """How well the retrieved evidence bears on the question: the signal behind refusals.

    `score` is the refusal rule's probability that the documents answer the question (`REFUSAL_RULE`); the other
    fields are what it reads. A feature the retrieval could not give (no BM25 in dense mode) is None.
    """

    score: float
    max_cosine: float  # best question-sentence cosine
    max_overlap: float  # best IDF-weighted share of question words in one sentence (and its title)
    entity_coverage: float  # share of the question's names and numbers found anywhere in the retrieved chunks
    word_coverage: float  # share of the question's content words found anywhere in the retrieved chunks
    best_evidence: float = 0.0  # the sentence ranker's score of the best sentence
    best_topical: float = 0.0  # the best topic score (cosine + overlap) of a sentence
    chunk_cosine: float | None = None  # best question-chunk cosine of the dense retrieval
    lexical_share: float | None = None  # best chunk's BM25 score over the most the question could score
    question_names: int = 0  # the question's names and numbers

    def to_dict(self) -> dict[str, float | None]:
        return {k: None if v is None else round(float(v), 4) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class RefusalRule:
    """A logistic rule over `Relevance`'s features: P(answerable) = sigmoid(bias + sum of weight * (x - mean) / scale).

    A missing feature (None) sits at its mean, so it moves nothing. Fitted by `bench/refusal_fit.py` on squad dev,
    each question asked with its article (answerable) and without it (unanswerable).
    """

    bias: float
    features: tuple[tuple[str, float, float, float], ...]  # (Relevance field, mean, scale, weight)

    def probability(self, relevance: Relevance) -> float:
        logit = self.bias
        for name, mean, scale, weight in self.features:
            value = getattr(relevance, name)
            if value is not None:
                logit += weight * (float(value) - mean) / scale
        if not math.isfinite(logit):  # a broken feature never lets a question through
            return 0.0
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))


_NAME_OR_NUMBER = re.compile(r"[^\W_][\w'’-]*")


def question_names(question: str) -> list[str]:
    """The question's names and numbers: capitalised words that do not open a sentence ("Discuss …", "How …"), and
    words with a digit."""
    names = []
    for sentence in re.split(r"(?<=[.?!])\s+", question.strip()):
        tokens = _NAME_OR_NUMBER.findall(sentence)
        names += [t for i, t in enumerate(tokens) if (i > 0 and t[0].isupper()) or t[0].isdigit()]
    return names


def relevance(question: str, hits: Sequence, evidence: Sequence[Evidence]) -> Relevance:
    """The evidence's relevance features and the refusal rule's probability that they answer the question.

    A question whose names (capitalised words after the first, numbers) appear nowhere in the retrieved text is
    very likely about something the documents do not cover, even when a sentence about a related topic scores well;
    so is one whose rare words the best chunk lacks (a low BM25 share).
    """
    if not evidence:
        return Relevance(0.0, 0.0, 0.0, 0.0, 0.0)
    available: set[str] = set()
    for hit in hits:
        title = str((hit.metadata or {}).get("title") or "").replace("_", " ")
        available.update(content_words(title + " " + hit.text))
    names = question_names(question)
    name_stems = [content_words(t) for t in names]
    name_stems = [w[0] for w in name_stems if w]
    words = list(dict.fromkeys(content_words(question)))

    def best_extra(key: str) -> float | None:
        values = [float(v) for hit in hits if (v := (getattr(hit, "extra", None) or {}).get(key)) is not None]
        return max(values) if values else None

    signal = Relevance(
        score=0.0,
        max_cosine=max(e.cosine for e in evidence),
        max_overlap=max(e.overlap for e in evidence),
        entity_coverage=sum(w in available for w in name_stems) / len(name_stems) if name_stems else 1.0,
        word_coverage=sum(w in available for w in words) / len(words) if words else 1.0,
        best_evidence=evidence[0].score,
        best_topical=max(e.topical for e in evidence),
        chunk_cosine=best_extra("dense_score"),
        lexical_share=best_extra("lexical_share"),
        question_names=len(names),
    )
    signal.score = REFUSAL_RULE.probability(signal)
    return signal


#: Fitted by `bench/refusal_fit.py fit --cap 6.5` on squad dev with the packaged MiniLM embedder (docs/benchmarks.md,
#: "Refusals that hold"; refit after the ranker's context terms): with `answer.min_relevance` 0.56,
#: leave-one-article-out 94.1 % of unanswerable and 7.4 % of answerable questions refused. Read as (feature, mean,
#: scale, weight): a question is likelier answered when its best sentence ranks high, its names are in the chunks and
#: the best chunk holds much of its BM25 weight. The cosine features follow the embedder: after changing it, refit
#: (or set `answer.min_relevance` from a few own questions).
REFUSAL_RULE = RefusalRule(bias=-0.2957, features=(
    ("max_cosine", 0.5425, 0.173, 0.8126),
    ("max_overlap", 0.4046, 0.2609, -0.6114),
    ("entity_coverage", 0.7122, 0.4184, 1.111),
    ("word_coverage", 0.6317, 0.2701, -0.283),
    ("best_evidence", 5.053, 1.371, 2.806),
    ("best_topical", 0.904, 0.4059, -0.06759),
    ("chunk_cosine", 0.4895, 0.1617, 0.5561),
    ("lexical_share", 0.2518, 0.1228, 1.178),
    ("question_names", 1.761, 1.107, -0.5025),
))
