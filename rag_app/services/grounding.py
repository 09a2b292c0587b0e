"""Grounding: find the sentences of the retrieved chunks that support an answer, and check that an answer is supported.

Everything here is plain text processing plus the embedder; no LM. The answer service uses it three ways:
- `rank_evidence`: the question's best supporting sentences across the retrieved chunks (embedding cosine of
  question vs sentence, plus overlap of the question's content words), each tied to its numbered source;
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
    score: float  # combined score, used for ranking and for the refusal decision
    cosine: float  # embedding similarity of question and sentence
    overlap: float  # share of the question's (IDF-weighted) content words found in the sentence and its chunk title


def _idf_weights(question_words: list[str], documents: Sequence[set[str]]) -> dict[str, float]:
    n = len(documents)
    return {w: math.log(1 + (n + 1) / (1 + sum(w in d for d in documents))) for w in set(question_words)}


def rank_evidence(question: str, hits: Sequence, embedder, *, cosine_weight: float = 1.0,
                  overlap_weight: float = 0.5, max_sentences: int = 64) -> list[Evidence]:
    """Score every sentence of the retrieved chunks as support for the question; best first.

    Args:
        question: the (standalone) question.
        hits: retrieved chunks, best first; sentence i of hit j is cited as source j+1.
        embedder: embeds the question and the sentences (question and sentences share one batch).
        cosine_weight, overlap_weight: the mix of the combined score.
        max_sentences: cap on sentences embedded (from the best hits first), to bound latency.

    Returns:
        Evidence for each sentence, sorted by combined score, best first.
    """
    items: list[tuple[int, str, str]] = []  # (source number, sentence, title)
    for number, hit in enumerate(hits, start=1):
        title = str((hit.metadata or {}).get("title") or "")
        for sentence in split_sentences(hit.text):
            items.append((number, sentence, title))
    items = items[:max_sentences]
    if not items:
        return []
    vectors = embedder.embed([question] + [sentence for _, sentence, _ in items])
    q_vec, s_vecs = vectors[0], vectors[1:]
    cosines = s_vecs @ q_vec  # (S,)
    q_words = content_words(question)
    sentence_words = [set(content_words(sentence)) | set(content_words(title.replace("_", " ")))
                      for _, sentence, title in items]
    idf = _idf_weights(q_words, sentence_words)
    total = sum(idf[w] for w in set(q_words)) or 1.0
    ranked = []
    for (number, sentence, _), words, cosine in zip(items, sentence_words, cosines):
        overlap = sum(idf[w] for w in set(q_words) if w in words) / total
        score = cosine_weight * float(cosine) + overlap_weight * overlap
        ranked.append(Evidence(sentence, number, score, float(cosine), overlap))
    ranked.sort(key=lambda e: e.score, reverse=True)
    return ranked


@dataclass
class Relevance:
    """How well the retrieved evidence bears on the question: the signal behind refusals."""

    score: float
    max_cosine: float  # best question-sentence cosine
    max_overlap: float  # best IDF-weighted share of question words in one sentence (and its title)
    entity_coverage: float  # share of the question's names and numbers found anywhere in the retrieved chunks
    word_coverage: float  # share of the question's content words found anywhere in the retrieved chunks

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


_NAME_OR_NUMBER = re.compile(r"[A-Za-z0-9][\w'’-]*")


def question_names(question: str) -> list[str]:
    """The question's names and numbers: capitalised words that do not open a sentence ("Discuss …", "How …"), and
    words with a digit."""
    names = []
    for sentence in re.split(r"(?<=[.?!])\s+", question.strip()):
        tokens = _NAME_OR_NUMBER.findall(sentence)
        names += [t for i, t in enumerate(tokens) if (i > 0 and t[0].isupper()) or t[0].isdigit()]
    return names


def relevance(question: str, hits: Sequence, evidence: Sequence[Evidence], *, overlap_weight: float = 0.5,
              entity_weight: float = 0.2, coverage_weight: float = 0.4) -> Relevance:
    """Combine sentence-level and chunk-level signals into one relevance score (higher: the documents say more).

    A question whose names (capitalised words after the first, numbers) appear nowhere in the retrieved text is
    very likely about something the documents do not cover, even when a sentence about a related topic scores well.
    """
    if not evidence:
        return Relevance(0.0, 0.0, 0.0, 0.0, 0.0)
    max_cosine = max(e.cosine for e in evidence)
    max_overlap = max(e.overlap for e in evidence)
    available: set[str] = set()
    for hit in hits:
        title = str((hit.metadata or {}).get("title") or "").replace("_", " ")
        available.update(content_words(title + " " + hit.text))
    names = question_names(question)
    name_stems = [content_words(t) for t in names]
    name_stems = [w[0] for w in name_stems if w]
    entity_coverage = sum(w in available for w in name_stems) / len(name_stems) if name_stems else 1.0
    words = content_words(question)
    word_coverage = sum(w in available for w in words) / len(words) if words else 1.0
    score = (max_cosine + overlap_weight * max_overlap + entity_weight * entity_coverage
             + coverage_weight * word_coverage)
    return Relevance(score, max_cosine, max_overlap, entity_coverage, word_coverage)
