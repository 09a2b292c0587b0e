"""Reader training data: question-answer sets → examples in the answer service's own prompt format.

A `QAItem` is a question over its own context (one or more passages) with the accepted answers (none: the context
does not answer it). `build_examples` turns each item into what the reader sees at answer time: the passages are
retrieved for the question (the nearest ones, as the dense retriever would), their sentences ranked by the product's
own ranker (`rank_evidence`), and the sentences the service would offer (`offered_evidence`) become the evidence. The
target is the answer as it stands in the best-ranked offered sentence that holds it, or `NO_ANSWER` when none does.

Abstention is taught with three kinds of example besides the data's own unanswerable questions:
- **retrieved negatives**: the question over the passages nearest to it that hold none of its answers (the
  on-topic paragraph that does not say: what real retrieval brings when the documents don't answer);
- **perturbed questions**: a name or number of the question swapped for one of the same kind that its passage does
  not contain ("When did Kublai Khan …" → "When did Ögedei Khan …"), a word swapped for its opposite ("first" →
  "last") or the question negated, so the passage looks on topic but no longer answers (SQuAD 2.0's adversarial
  kinds);
- **answer removed**: the question over its own passages with every sentence that holds an answer taken out, so
  the evidence is the same paragraph, on topic, but silent on the point (cleanly unanswerable, no label noise);
- **missing answers**: the answer sentence was not among the offered ones.

Readers of the sets (`load_items`) know the layouts of `../shared/train` (NQ-open oracle, COVID-QA, QASPER) and a
plain JSON-lines format for a user's own pairs: `{"question", "context", "answers": [...], "group"?}` (empty answers:
unanswerable).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rag_app.errors import RagError
from rag_app.services.prompting import NO_ANSWER
from rag_app.text import STOPWORDS, split_sentences

# Longest answer (in words) the reader is trained to extract: the service scores spans of at most
# `answer.reader_max_tokens` tokens, so longer gold answers (COVID-QA's whole sentences) are left out.
MAX_ANSWER_WORDS = 8
# A long context is cut into windows of about this many characters (the chunker's ~200 MiniLM tokens).
WINDOW_CHARS = 900


@dataclass
class QAItem:
    question: str
    passages: list[str]  # the question's own context, cut into chunk-sized windows
    answers: list[str]  # empty: the context does not answer the question
    group: str  # the article or paper: splits and cross-validation never divide a group
    source: str  # which set it comes from
    title: str = ""


@dataclass
class ReaderExample:
    question: str
    evidence: list[tuple[int, str]]  # (source number, sentence), in the order offered
    target: str  # a verbatim span of one evidence sentence, or NO_ANSWER
    group: str
    source: str
    kind: str  # "answer", "unanswerable", "missing", "retrieved-negative", "perturbed"
    titles: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> ReaderExample:
        row = dict(row)
        row["evidence"] = [(int(n), str(t)) for n, t in row["evidence"]]
        row["titles"] = {int(k): v for k, v in (row.get("titles") or {}).items()}
        return cls(**row)


# -- reading the sets -------------------------------------------------------------------------------------------------
def windows(text: str, size: int = WINDOW_CHARS) -> list[str]:
    """`text` cut at sentence boundaries into pieces of about `size` characters."""
    pieces, current = [], ""
    for sentence in split_sentences(text):
        if current and len(current) + len(sentence) > size:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def _short(answers: Iterable[str]) -> list[str]:
    return [a.strip() for a in answers if a and a.strip() and len(a.split()) <= MAX_ANSWER_WORDS]


def nq_open_oracle(path: Path) -> list[QAItem]:
    items = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            ctx = row["ctxs"][0]
            answers = _short(a for a in row["answers"] if a in ctx["text"])
            if answers:
                items.append(QAItem(row["question"].strip().rstrip("?") + "?", [ctx["text"]], answers,
                                    group=f"nq:{ctx['title']}", source="nq_open_oracle", title=ctx["title"]))
    return items


def covid_qa(path: Path) -> list[QAItem]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    items = []
    for article in data:
        for paragraph in article["paragraphs"]:
            parts = windows(paragraph["context"])
            for qa in paragraph["qas"]:
                answers = _short(a["text"] for a in qa["answers"] if a["text"].strip() in paragraph["context"])
                if answers:
                    items.append(QAItem(qa["question"].strip(), parts, answers,
                                        group=f"covid:{paragraph.get('document_id', article.get('title', ''))}",
                                        source="covid_qa"))
    return items


def qasper(path: Path) -> list[QAItem]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        papers = json.load(handle)
    items = []
    for paper_id, paper in papers.items():
        text = " ".join([paper.get("abstract", "")] + [p for section in paper["full_text"]
                                                       for p in section["paragraphs"] if p])
        parts = windows(text)
        for qa in paper["qas"]:
            annotations = [a["answer"] for a in qa["answers"]]
            if annotations and all(a["unanswerable"] for a in annotations):
                answers: list[str] = []
            else:
                spans = [s for a in annotations for s in a.get("extractive_spans") or []]
                answers = _short(s for s in spans if s.strip() and s.strip() in text)
                if not answers:
                    continue  # free-form or yes/no only: not an extractive item
            items.append(QAItem(qa["question"].strip(), parts, answers, group=f"qasper:{paper_id}", source="qasper",
                                title=paper.get("title", "")))
    return items


def own_pairs(path: Path) -> list[QAItem]:
    """A user's own pairs: JSON lines of {"question", "context", "answers": [...], "group"?, "title"?}."""
    items = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                question, context = str(row["question"]), str(row["context"])
                answers = [str(a) for a in row.get("answers") or []]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise RagError(f"{path}, line {number}: expected a JSON object with question, context and answers "
                               f"({exc})") from exc
            missing = [a for a in answers if a not in context]
            if missing:
                raise RagError(f"{path}, line {number}: the answer {missing[0]!r} is not a verbatim part of the "
                               "context (the reader extracts spans)")
            items.append(QAItem(question, windows(context), _short(answers) if answers else [],
                                group=str(row.get("group") or f"line-{number}"), source=path.stem,
                                title=str(row.get("title") or "")))
    return items


#: File name (relative to a data folder) → reader; the layout of `../shared/train`.
KNOWN_SETS = {
    "nq_open_oracle/nq-open-oracle.jsonl.gz": nq_open_oracle,
    "covid_qa/200423_covidQA.json": covid_qa,
    "qasper/qasper-test-v0.3.json.gz": qasper,
}


def load_items(paths: Sequence[Path]) -> list[QAItem]:
    """Every item of the given sets: a folder laid out as `../shared/train` (the known files in it), or a JSON-lines
    file of one's own pairs."""
    items: list[QAItem] = []
    for path in paths:
        if path.is_dir():
            found = [(path / name, read) for name, read in KNOWN_SETS.items() if (path / name).is_file()]
            if not found:
                raise RagError(f"{path} holds none of the known training sets ({', '.join(KNOWN_SETS)}); give a "
                               "JSON-lines file of your own pairs instead")
            for file, read in found:
                items += read(file)
        elif path.is_file():
            items += own_pairs(path)
        else:
            raise RagError(f"training data not found: {path}")
    return items


# -- building examples ------------------------------------------------------------------------------------------------
_NAME = re.compile(r"(?<!^)(?<![.?!] )\b([A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)*)")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_EDGE = r"(?<![\w'’-])", r"(?![\w'’-])"  # a whole word: "won't" and "cold-start" are not "won" and "start"


def _word(text: str) -> re.Pattern:
    return re.compile(_EDGE[0] + text + _EDGE[1], re.IGNORECASE)


# Superlatives, ordinals and opposed kinds: a passage that answers one rarely also answers the other (SQuAD 2.0's
# "antonym" questions). Comparatives are left out: "which is worse" is answered by "A beats B".
_OPPOSITE_PAIRS = (("first", "last"), ("largest", "smallest"), ("highest", "lowest"), ("earliest", "latest"),
                   ("oldest", "youngest"), ("longest", "shortest"), ("best", "worst"), ("maximum", "minimum"),
                   ("most", "least"), ("fastest", "slowest"), ("strongest", "weakest"), ("north", "south"),
                   ("east", "west"), ("northern", "southern"), ("eastern", "western"), ("male", "female"),
                   ("men", "women"), ("internal", "external"))
_OPPOSITES = {a: b for pair in _OPPOSITE_PAIRS for a, b in (pair, pair[::-1])}
_OPPOSITE = _word("(" + "|".join(_OPPOSITES) + ")")
# The auxiliary a negation contracts onto ("When was …" → "When wasn't …": SQuAD 2.0's "negation" questions); not
# "will" or "can", often names and nouns, nor "has" or "have", often the main verb ("how many wins does X have").
_NEGATIONS = {"is": "isn't", "was": "wasn't", "are": "aren't", "were": "weren't", "did": "didn't", "does": "doesn't",
              "do": "don't", "could": "couldn't", "would": "wouldn't", "should": "shouldn't"}
_AUXILIARY = _word("(" + "|".join(_NEGATIONS) + ")")
_NEGATED = re.compile(r"\b(not|never|no longer)\b|n['’]t\b", re.IGNORECASE)
_DETERMINER = re.compile(r"\s+(the|a|an|his|her|their|its|this|that|these|those)\b", re.IGNORECASE)
# A name from the data fit to stand in for another (not a code such as "bibref8" or "cd66").
_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z'’. -]*[a-z]")
# How often each kind of change is chosen when a question allows several; a negation is made only with
# `NEGATION_ODDS` (most questions allow one, few answerable questions carry one): "n't" alone must not become the
# cue for "unanswerable".
KIND_WEIGHTS = {"swap": 4.0, "opposite": 3.0, "negation": 1.0}
NEGATION_ODDS = 0.35


def _with_case_of(word: str, model: str) -> str:
    return word.capitalize() if model[:1].isupper() else word


def _lowercase_names(question: str, passage: str) -> list[re.Match]:
    """The passage's names of two or more words found in an all-lowercase question (NQ's), longest first, never
    overlapping, and never a name cut short where a sentence starts ("Will Hunting" of "Good Will Hunting")."""
    found: list[re.Match] = []
    for name in sorted({m.group() for m in _NAME.finditer(passage) if " " in m.group()}, key=lambda n: (-len(n), n)):
        match = _word(re.escape(name.lower())).search(question)
        if not match or any(match.start() < f.end() and f.start() < match.end() for f in found):
            continue
        before = question[:match.start()].split()[-1:]
        if before and before[0].capitalize() + " " + name in passage:
            continue
        found.append(match)
    return found


def _changes(question: str, passage: str, pool: dict[str, list[str]]) -> dict[str, list]:
    """Kind → [(a part of the question, what may replace it, whether a replacement fits)]."""
    lower_passage = passage.lower()
    changes: dict[str, list] = {"swap": [], "opposite": [], "negation": []}
    for kind, pattern in (("number", _NUMBER), ("name", _NAME)):
        for match in pattern.finditer(question):
            if match.group() in passage:
                changes["swap"].append((match, pool[kind], lambda c, old=match.group(): c not in passage
                                        and c.lower() != old.lower()))
    if question == question.lower():
        for match in _lowercase_names(question, passage):
            changes["swap"].append((match, pool["lower-name"], lambda c: c not in lower_passage))
    for match in _OPPOSITE.finditer(question):
        opposite = _OPPOSITES[match.group().lower()]
        if not _word(opposite).search(passage):
            changes["opposite"].append((match, [_with_case_of(opposite, match.group())], lambda c: True))
    auxiliary = _AUXILIARY.search(question)
    if (auxiliary and auxiliary.start() > 0  # not a yes/no question ("Did they use BERT?" keeps its answer)
            and not (auxiliary.group().lower() in ("do", "does", "did")  # "who did the singing": a main verb
                     and _DETERMINER.match(question, auxiliary.end()))
            and not _NEGATED.search(question) and not _NEGATED.search(passage)):
        changes["negation"].append((auxiliary, [_with_case_of(_NEGATIONS[auxiliary.group().lower()],
                                                              auxiliary.group())], lambda c: True))
    return changes


def perturb(question: str, passage: str, pool: dict[str, list[str]], rng: random.Random,
            tries: int = 32) -> str | None:
    """The question changed so that its passage, still on topic, no longer answers it (SQuAD 2.0's adversarial
    kinds), or None when nothing can change:
    - swap: a name or number it shares with the passage replaced by another of the same kind from `pool` ("name",
      "lower-name" for all-lowercase questions, "number") that the passage lacks;
    - opposite: a superlative or ordinal replaced by its opposite, which the passage lacks ("first" → "last");
    - negation: "was" → "wasn't", when neither the question nor the passage holds a negation.
    One change: its kind drawn by `KIND_WEIGHTS` among those the question allows (then the others; a negation only
    with `NEGATION_ODDS`), its place at random; a swap tries up to `tries` distinct replacements."""
    changes = _changes(question, passage, pool)
    kinds = [k for k in KIND_WEIGHTS if changes[k]]
    while kinds:
        kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
        kinds.remove(kind)
        if kind == "negation" and rng.random() >= NEGATION_ODDS:
            continue
        options = changes[kind]
        rng.shuffle(options)
        for match, replacements, fits in options:
            for swap in rng.sample(replacements, min(tries, len(replacements))):
                if fits(swap):
                    return question[:match.start()] + swap + question[match.end():]
    return None


class _CachedEmbedder:
    """The embedder, remembering every text's vector: a paper's sentences come back with each of its questions."""

    def __init__(self, embedder):
        self.embedder, self.vectors = embedder, {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if missing:
            self.vectors.update(zip(missing, self.embedder.embed(missing)))
        return np.stack([self.vectors[t] for t in texts])


class _Hit:
    """A passage shaped as a retrieval hit for the ranker."""

    def __init__(self, text: str, title: str, rank: int):
        self.id, self.text, self.metadata, self.score, self.extra = f"p{rank}", text, {"title": title}, 0.0, {}


def _target(evidence: Sequence[tuple[int, str]], answers: Sequence[str]) -> str:
    """The first answer found, as written, in the best-ranked offered sentence that holds one; else NO_ANSWER."""
    for _, sentence in evidence:
        for answer in answers:
            if answer in sentence:
                return answer
    return NO_ANSWER


def build_examples(items: Sequence[QAItem], embedder, *, sentence_weights, evidence_sentences: int,
                   evidence_margin: float, hits: int = 3, seed: int = 0, negatives: float = 0.25,
                   perturbed: float = 0.4, removed: float = 0.0, progress=None) -> list[ReaderExample]:
    """Reader examples for `items` (see the module docstring), deterministic for a seed.

    Args:
        embedder: the product's embedder (the ranker reads its cosines).
        sentence_weights, evidence_sentences, evidence_margin: the answer settings the service ranks and offers with.
        hits: passages retrieved per question (its own best windows, or for short contexts the nearest passages of
            other items as distractors).
        negatives: share of answerable items that also give a retrieved negative.
        perturbed: share of answerable items that also give a perturbed question.
        removed: share of answerable items that also give their own passages without the answer's sentences.
    """
    from rag_app.services.grounding import offered_evidence, rank_evidence

    rng = random.Random(seed)
    embedder = _CachedEmbedder(embedder)
    # Every passage once, embedded once (a paper's windows are shared by its questions): the "collection" the
    # nearest passages come from.
    passages: list[str] = []
    index_of: dict[str, int] = {}
    own_ids: list[list[int]] = []
    title_of: list[str] = []
    for item in items:
        ids = []
        for text in item.passages:
            if text not in index_of:
                index_of[text] = len(passages)
                passages.append(text)
                title_of.append(item.title)
            ids.append(index_of[text])
        own_ids.append(ids)
    vectors = embedder.embed(passages)
    questions = embedder.embed([item.question for item in items])
    pools = {}  # per source: a swapped-in name comes from the same kind of text (Wikipedia, papers)
    for source in sorted({item.source for item in items}):
        names = sorted({re.sub(r"^The ", "", m.group()) for item in items if item.source == source
                        for text in [item.question, *item.passages] for m in _NAME.finditer(text)
                        if _PLAIN_NAME.fullmatch(m.group()) and m.group().lower() not in STOPWORDS})
        pools[source] = {"name": names, "lower-name": sorted({n.lower() for n in names if " " in n}),
                         "number": sorted({m.group() for item in items if item.source == source
                                           for m in _NUMBER.finditer(item.question)})}

    def without(text: str, answers: Sequence[str]) -> str:
        return " ".join(s for s in split_sentences(text) if not any(a in s for a in answers))

    def example(question: str, chosen: list[int], item: QAItem, answers: Sequence[str], kind: str,
                strip: Sequence[str] = ()) -> ReaderExample:
        shown = [_Hit(without(passages[p], strip) if strip else passages[p], title_of[p], rank)
                 for rank, p in enumerate(chosen, start=1)]
        ranked = rank_evidence(question, shown, embedder, weights=sentence_weights)
        offered = offered_evidence(ranked, evidence_sentences, evidence_margin)
        evidence = [(e.source, e.text) for e in offered]
        target = _target(evidence, answers)
        if kind == "answer" and target == NO_ANSWER:
            kind = "missing"
        titles = {n: h.metadata["title"] for n, h in enumerate(shown, start=1) if h.metadata["title"]}
        return ReaderExample(question, evidence, target, item.group, item.source, kind, titles)

    examples: list[ReaderExample] = []
    for index, item in enumerate(items):
        if progress:
            progress(index)
        scores = vectors @ questions[index]
        own = np.asarray(own_ids[index])
        best_own = own[np.argsort(-scores[own])][:hits]
        ranked_all = np.argsort(-scores)
        mine = set(own_ids[index])
        # Distractors: the nearest passages of other questions that do not hold the answer (another may).
        clean = [int(p) for p in ranked_all[: 4 * hits + len(mine)] if int(p) not in mine
                 and not any(a in passages[p] for a in item.answers)]
        chosen = [int(p) for p in best_own] + clean[: max(0, hits - len(best_own))]
        order = sorted(chosen, key=lambda p: -scores[p])  # as retrieval ranks them
        kind = "answer" if item.answers else "unanswerable"
        examples.append(example(item.question, order, item, item.answers, kind))
        if not item.answers:
            continue
        if rng.random() < negatives and clean:
            examples.append(example(item.question, clean[:hits], item, item.answers, "retrieved-negative"))
        if rng.random() < perturbed:
            changed = perturb(item.question, " ".join(item.passages), pools[item.source], rng)
            if changed:
                examples.append(example(changed, order, item, (), "perturbed"))
        if removed and rng.random() < removed:
            silent = example(item.question, order, item, item.answers, "answer-removed", strip=item.answers)
            if silent.evidence and silent.target == NO_ANSWER:
                examples.append(silent)
    return examples


def split_by_group(examples: Sequence[ReaderExample], dev_share: float, seed: int
                   ) -> tuple[list[ReaderExample], list[ReaderExample]]:
    """(train, dev): whole groups (articles, papers) go to one side, chosen by a seeded hash of the group."""
    def to_dev(group: str) -> bool:
        digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < dev_share

    train = [e for e in examples if not to_dev(e.group)]
    dev = [e for e in examples if to_dev(e.group)]
    return train, dev


def save_examples(examples: Sequence[ReaderExample], path: Path) -> str:
    """Write JSON lines; returns their sha256."""
    text = "".join(json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=True) + "\n" for e in examples)
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def load_examples(path: Path) -> list[ReaderExample]:
    with open(path, encoding="utf-8") as handle:
        return [ReaderExample.from_dict(json.loads(line)) for line in handle if line.strip()]
