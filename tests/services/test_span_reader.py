"""The likelihood span reader: every candidate span scored by an LM with known likelihoods; the best one wins."""

from __future__ import annotations

import math
import re
from contextlib import contextmanager

import numpy as np
import pytest

from rag_app.components.embedder import FakeEmbedder
from rag_app.components.llm import LLM, Continuations
from rag_app.components.store import Hit
from rag_app.services.answer import AnswerService
from rag_app.services.extractive import span_candidates
from rag_app.settings import Settings
from rag_app.text import content_words

EOS = "</s>"
CHAT = [{"role": "user", "content": "q"}]
EVIDENCE = ["The Denver Broncos beat the Carolina Panthers."]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


class BigramLM(LLM):
    """A word-level fake LM whose next-token logits depend on the previous token only: `first` gives the logits of
    the reply's first token, `after[prev]` those after `prev` (unlisted tokens: -10). Greedy decoding and the
    likelihood of a whole span can disagree, which is what the reader is for."""

    exposes_logits = True

    def __init__(self, first: dict[str, float], after: dict[str, dict[str, float]]):
        self.name = "bigram-fake"
        self.context_window = 4096
        self.first, self.after = first, after
        self.vocab: list[str] = [EOS, "\n"]
        for table in [first, *after.values()]:
            for token in table:
                self._id(token)
        for token in after:
            self._id(token)
        self.prompts: list[list[dict]] = []

    def _id(self, token: str) -> int:
        if token not in self.vocab:
            self.vocab.append(token)
        return self.vocab.index(token)

    def _logits(self, table: dict[str, float]) -> np.ndarray:
        logits = np.full(len(self.vocab), -10.0)
        for token, value in table.items():
            logits[self._id(token)] = value
        return logits

    def count_tokens(self, text):
        return len(text.split())

    def stream(self, messages, max_new_tokens=96, temperature=0.0, stop=(), prefix=""):
        raise AssertionError("the likelihood reader scores spans; it never generates")

    def tokenize(self, text):
        pieces = re.findall(r"\n|\s?[^\s.,]+|[.,]", text)
        return [self._id("Ġ" + p[1:] if p[:1] == " " else p) for p in pieces]

    def token_strings(self, ids):
        return [self.vocab[i] for i in ids]

    def detokenize(self, ids):
        return "".join(self.vocab[i] for i in ids if i != 0).replace("Ġ", " ")

    def stop_ids(self):
        return {0}

    @contextmanager
    def continuations(self, messages, prefix="", reserve=32):
        self.prompts.append(list(messages))
        lm = self

        class Run(Continuations):
            first_logprobs = log_softmax(lm._logits(lm.first))

            def score(self, continuations, end_ids):
                ends = sorted(end_ids)
                out = []
                for cont in continuations:
                    token_lp, end_lp = [], []
                    for t, tid in enumerate(cont):
                        lp = self.first_logprobs if t == 0 else log_softmax(
                            lm._logits(lm.after.get(lm.vocab[cont[t - 1]], {})))
                        token_lp.append(lp[tid])
                        nxt = log_softmax(lm._logits(lm.after.get(lm.vocab[tid], {})))
                        end_lp.append(np.logaddexp.reduce(nxt[ends]))
                    out.append((np.array(token_lp), np.array(end_lp)))
                return out

        yield Run()


# Greedy decoding would start with "Carolina" (the likeliest first word), but after it the model is unsure; the
# span "Denver Broncos" followed by the end of the reply is the likelier answer as a whole.
FIRST = {"ĠCarolina": 3.0, "ĠDenver": 2.5, "ĠBroncos": 0.5}
AFTER = {"ĠCarolina": {"ĠPanthers": 0.0, EOS: 0.0, "Ġbeat": 0.0, "Ġthe": 0.0},
         "ĠPanthers": {EOS: 0.0, ".": 0.0, "Ġthe": 0.0},
         "ĠDenver": {"ĠBroncos": 6.0},
         "ĠBroncos": {EOS: 6.0, "Ġbeat": 1.0}}


def test_the_likeliest_whole_span_wins_over_the_likeliest_first_word():
    best = span_candidates(BigramLM(FIRST, AFTER), CHAT, EVIDENCE, length_power=0.0)
    assert best[0].text == "Denver Broncos"
    assert best[0].evidence_index == 0 and best[0].tokens == 2
    # Every candidate is a verbatim span of the evidence, and they come best first.
    assert all(c.text in EVIDENCE[0] for c in best)
    assert [c.score for c in best] == sorted((c.score for c in best), reverse=True)


def test_likelihoods_are_those_of_the_lm():
    lm = BigramLM(FIRST, AFTER)
    best = {c.text: c for c in span_candidates(lm, CHAT, EVIDENCE, length_power=0.0)}
    first = log_softmax(lm._logits(FIRST))
    after_denver = log_softmax(lm._logits(AFTER["ĠDenver"]))
    after_broncos = log_softmax(lm._logits(AFTER["ĠBroncos"]))
    expected = first[lm._id("ĠDenver")] + after_denver[lm._id("ĠBroncos")] + after_broncos[0]
    assert np.isclose(best["Denver Broncos"].logprob, expected, atol=1e-5)


def test_a_span_never_starts_with_a_function_word_or_crosses_texts():
    lm = BigramLM({"Ġof": 9.0, "ĠDenver": 1.0}, {"ĠDenver": {EOS: 5.0}})
    spans = [c.text for c in span_candidates(lm, CHAT, ["Fans of Denver", "Broncos won"])]
    assert spans[0] == "Denver"
    assert not any(s.lower().startswith("of") for s in spans)
    assert "Denver Broncos" not in spans


def test_the_answer_type_and_the_evidence_rank_weigh_in():
    lm = BigramLM({"ĠDenver": 3.0, "Ġ2016": 1.0}, {"ĠDenver": {EOS: 5.0}, "Ġ2016": {EOS: 5.0}})
    evidence = ["Denver won.", "It was 2016."]
    assert span_candidates(lm, CHAT, evidence)[0].text == "Denver"
    assert span_candidates(lm, CHAT, evidence, answer_type="date")[0].text == "2016"
    # The same likelihoods, the answer from a lower-ranked sentence: a rank penalty prefers the best-ranked one.
    lm = BigramLM({"ĠDenver": 2.0, "Ġ2016": 3.0}, {"ĠDenver": {EOS: 5.0}, "Ġ2016": {EOS: 5.0}})
    assert span_candidates(lm, CHAT, evidence)[0].text == "2016"
    assert span_candidates(lm, CHAT, evidence, rank_penalty=2.0)[0].text == "Denver"


class ListRetriever:  # same as test_answer.py
    def __init__(self, hits):
        self.hits = hits

    def retrieve(self, query, k=None, source_glob=None):
        return self.hits[: k or len(self.hits)]


def test_the_answer_service_answers_with_the_readers_span_and_cites_it(tmp_path):
    settings = Settings(home=tmp_path, profile="test").with_overrides(**{"answer.reader": "likelihood",
                                                                          "answer.min_relevance": 0.0})
    hits = [Hit(id="nfl.md#0", text=EVIDENCE[0], metadata={"source": "nfl.md", "title": "Super Bowl"}, score=0.9)]
    lm = BigramLM(FIRST, AFTER)
    answer = AnswerService(settings, ListRetriever(hits), lm, FakeEmbedder()).ask("Who beat the Carolina Panthers?")
    assert not answer.refused
    assert answer.short == "Denver Broncos"
    assert answer.text.startswith("Denver Broncos [1].")
    assert answer.extra["reader"] == "likelihood"
    assert answer.sources[0].cited and lm.prompts  # the span prompt was scored


def _byte_level() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE shows a token's bytes this way)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE = _byte_level()
UNBYTE = {c: b for b, c in BYTE.items()}


class ByteLevelLM(BigramLM):
    """BigramLM with a byte-level tokenizer: a non-ASCII character is one token per UTF-8 byte, and decoding a cut
    character gives U+FFFD, as a real byte-level BPE does for a rare character."""

    def tokenize(self, text):
        ids = []
        for piece in re.findall(r"\n|\s?[^\s.,]+|[.,]", text):
            if piece == "\n":
                ids.append(self._id("\n"))
                continue
            chunk = "Ġ" if piece[:1] == " " else ""
            for ch in piece.lstrip(" "):
                if ord(ch) < 128:
                    chunk += ch
                    continue
                if chunk:
                    ids.append(self._id(chunk))
                    chunk = ""
                ids.extend(self._id(BYTE[b]) for b in ch.encode())
            if chunk:
                ids.append(self._id(chunk))
        return ids

    def detokenize(self, ids):
        data = b"".join(b"\n" if self.vocab[i] == "\n" else bytes(UNBYTE[c] for c in self.vocab[i])
                        for i in ids if i != 0)
        return data.decode("utf-8", errors="replace")


def test_a_span_that_cuts_a_character_in_two_is_no_candidate():
    # "°" is two bytes, C2 B0; the second shows as "°", not a letter, so the token table sees a word boundary inside
    # the character. The LM likes ending there ("100" + the first byte): that text is not in the evidence.
    evidence = ["Water boils at 100°C."]
    lm = ByteLevelLM({"Ġ100": 3.0}, {"Ġ100": {"Â": 5.0}, "Â": {EOS: 8.0, "°": 0.0}, "°": {"C": 5.0},
                                     "C": {EOS: 5.0}})
    best = span_candidates(lm, CHAT, evidence, length_power=0.0)
    assert best and all(c.text in evidence[0] for c in best)
    assert best[0].text == "100°C"


def test_equal_openings_start_in_the_better_ranked_text_first():
    lm = BigramLM({"ĠDenver": 3.0}, {"ĠDenver": {EOS: 5.0}})
    best = span_candidates(lm, CHAT, ["Denver won.", "Denver lost."], starts=1)
    assert best[0].evidence_index == 0


def test_the_evidence_index_counts_blank_texts():
    lm = BigramLM({"ĠDenver": 3.0}, {"ĠDenver": {EOS: 5.0}})
    best = span_candidates(lm, CHAT, ["  ", "Denver won."])
    assert best[0].text == "Denver" and best[0].evidence_index == 1


def test_the_prompt_leaves_room_for_the_readers_continuations(tmp_path):
    # The reader scores continuations of reader_max_tokens after the prompt: the prompt must leave that much of the
    # context window (a real LM would otherwise cut the prompt from the left, losing its instructions).
    settings = Settings(home=tmp_path, profile="test").with_overrides(**{
        "answer.reader": "likelihood", "answer.min_relevance": 0.0, "answer.evidence_margin": 3.0,
        "answer.reader_max_tokens": 64, "answer.span_max_tokens": 4})
    filler = " ".join(f"word{i}" for i in range(40))
    hits = [Hit(id=f"nfl{k}.md#0", text=f"The Denver Broncos beat the Carolina Panthers in game {k} with {filler}.",
                metadata={"source": f"nfl{k}.md", "title": "Super Bowl"}, score=0.9) for k in range(8)]
    seen = []

    class Recording(BigramLM):
        def continuations(self, messages, prefix="", reserve=32):
            seen.append((self.count_prompt_tokens(messages, prefix), reserve))
            return super().continuations(messages, prefix, reserve)

    lm = Recording(FIRST, AFTER)
    lm.context_window = 300
    answer = AnswerService(settings, ListRetriever(hits), lm, FakeEmbedder()).ask("Who beat the Carolina Panthers?")
    assert answer.short == "Denver Broncos"
    (prompt_tokens, reserve), = seen
    assert reserve == 64 and prompt_tokens + reserve <= lm.context_window


def test_a_span_next_to_the_question_words_wins_a_tie():
    # "11" and "35" are equally likely answers; "11" stands next to "hours", which the question asks about.
    lm = BigramLM({"Ġ11": 2.0, "Ġ35": 2.0}, {"Ġ11": {EOS: 5.0}, "Ġ35": {EOS: 5.0}})
    evidence = ["Mending of gill nets: hours 11, rate per hour in euros 35."]
    near = ["hour"]
    assert span_candidates(lm, CHAT, evidence, near=["hour"], proximity_weight=0.75)[0].text == "11"
    lm = BigramLM({"Ġ11": 2.0, "Ġ35": 2.2}, {"Ġ11": {EOS: 5.0}, "Ġ35": {EOS: 5.0}})
    assert span_candidates(lm, CHAT, evidence)[0].text == "35"  # without the weight, the likelihood decides
    assert span_candidates(lm, CHAT, evidence, near=near, proximity_weight=0.75)[0].text == "11"


def test_a_span_that_repeats_the_question_loses_to_one_that_says_something_new():
    # "Denver" (a question word) and "Broncos" are equally likely answers; the question-share weight picks the word
    # the question does not have. The article weight prefers a whole noun phrase, the length weight a shorter span.
    lm = BigramLM({"ĠDenver": 2.0, "ĠBroncos": 2.0}, {"ĠDenver": {EOS: 5.0}, "ĠBroncos": {EOS: 5.0}})
    evidence = ["Denver Broncos"]
    asked = content_words("Which team is Denver's?")  # the question's stems, as the service passes them
    shape = (0.0, -0.42, 0.0, 0.0)
    assert span_candidates(lm, CHAT, evidence, near=asked)[0].text == "Denver"  # without the weight: the first
    assert span_candidates(lm, CHAT, evidence, near=asked, shape_weights=shape)[0].text == "Broncos"
    lm = BigramLM({"Ġthe": 2.0, "Ġbig": 2.0}, {"Ġthe": {"Ġbig": 6.0}, "Ġbig": {"Ġdog": 6.0}, "Ġdog": {EOS: 6.0}})
    assert span_candidates(lm, CHAT, ["the big dog"], shape_weights=(0.0, 0.0, 2.0, 0.0))[0].text == "the big dog"
    assert span_candidates(lm, CHAT, ["the big dog"], shape_weights=(0.0, 0.0, -2.0, 0.0))[0].text == "big dog"


def test_the_shape_terms_add_to_the_likelihood_score():
    lm = BigramLM(FIRST, AFTER)
    plain = {c.text: c for c in span_candidates(lm, CHAT, EVIDENCE, length_power=0.0)}
    weights = (-0.5, 0.0, 0.0, -0.25)
    shaped = {c.text: c for c in span_candidates(lm, CHAT, EVIDENCE, length_power=0.0, shape_weights=weights)}
    first = log_softmax(lm._logits(FIRST))
    after_denver = log_softmax(lm._logits(AFTER["ĠDenver"]))
    span_lp = first[lm._id("ĠDenver")] + after_denver[lm._id("ĠBroncos")]  # the span's tokens, without the end
    expected = plain["Denver Broncos"].score - 0.5 * span_lp / 3 - 0.25 * np.log(3)
    assert np.isclose(shaped["Denver Broncos"].score, expected, atol=1e-5)


def test_reshape_spans_weighs_length_question_words_and_distance():
    from rag_app.services.extractive import SpanCandidate, reshape_spans, span_shapes

    text = "Steam turbines replaced reciprocating engines, and about 2 million were built by 1900."
    question = "What replaced reciprocating engines?"
    spans = [SpanCandidate("reciprocating engines", 0, 3, -1.0, 0.0, -1.0),
             SpanCandidate("Steam turbines", 0, 3, -1.5, 0.0, -1.5),
             SpanCandidate("2", 0, 1, -1.2, 0.0, -1.2)]
    shapes = span_shapes(spans, [text], question)
    assert shapes[0]["asked"] == 1.0 and shapes[1]["asked"] == 0.0
    assert shapes[1]["far"] < shapes[2]["far"]  # "Steam turbines" stands next to a question word
    assert reshape_spans(spans, shapes, {}) == 0  # no weights: the likeliest
    assert reshape_spans(spans, shapes, {"asked_weight": -2.0}) == 2
    assert reshape_spans(spans, shapes, {"asked_weight": -2.0, "proximity_weight": 0.75}) == 1
    # A length power favours the longer of two equally likely spans.
    long, short = SpanCandidate("2 million", 0, 2, -2.0, 0.0, -2.0), SpanCandidate("2", 0, 1, -1.8, 0.0, -1.8)
    pair = [short, long]
    pair_shapes = span_shapes(pair, [text], question)
    assert reshape_spans(pair, pair_shapes, {}) == 0
    assert reshape_spans(pair, pair_shapes, {"length_power": 0.5}) == 1


def test_reshape_spans_prefers_the_better_ranked_sentence_when_weighted():
    from rag_app.services.extractive import SpanCandidate, reshape_spans, span_shapes

    evidence = ["The encoder has 12 layers.", "An older model had 6 layers."]
    question = "How many layers does the encoder have?"
    spans = [SpanCandidate("6", 1, 1, -1.0, 0.0, -1.0), SpanCandidate("12", 0, 1, -1.3, 0.0, -1.3)]
    shapes = span_shapes(spans, evidence, question)
    assert shapes[0]["rank"] > shapes[1]["rank"] == 0.0  # log(1 + place among the offered sentences)
    assert reshape_spans(spans, shapes, {}) == 0
    assert reshape_spans(spans, shapes, {"rank_weight": 1.0}) == 1


def test_span_features_read_the_text_beside_the_other_spans_and_the_card_weighs_them():
    from rag_app.services.extractive import SpanCandidate, reshape_spans, span_features, span_shapes

    evidence = ["Australia's dairy herd numbers 3 million cows, 60% of them in Victoria.",
                "Victoria, in the south-east, has 3 million cows."]
    question = "How many dairy cows are there in Australia?"
    spans = [SpanCandidate("60%", 0, 2, -0.9, 0.0, -0.9), SpanCandidate("3 million", 0, 2, -1.0, 0.0, -1.0),
             SpanCandidate("3 million", 1, 2, -1.1, 0.0, -1.1), SpanCandidate("Victoria", 0, 1, -1.2, 0.0, -1.2),
             SpanCandidate("the south-east", 1, 3, -2.0, 0.0, -2.0),
             SpanCandidate("3 million cows, 60%", 0, 6, -3.0, 0.0, -3.0)]
    features = span_features(spans, span_shapes(spans, evidence, question), question, length_power=0.5)
    assert features[0]["normalised_logprob"] == -0.9 / 3 ** 0.5 and features[0]["logprob"] == -0.9
    assert features[1]["repeats"] == math.log(2) and features[0]["repeats"] == 0.0  # read from two sentences
    assert features[3]["misfit"] == 1.0 and features[1]["misfit"] == 0.0  # "how many" asks for a number
    assert features[4]["function_start"] == 1.0 and features[3]["capitalised"] == 1.0
    assert features[5]["holds_others"] == math.log1p(3) and features[5]["punctuated"] == 1.0  # "3 million" twice
    # The card's weights choose: none, the likeliest; a weight on a span read from several sentences, that one.
    assert reshape_spans(spans, [{}] * 6, {}, question) == 0
    assert reshape_spans(spans, [{}] * 6, {"weights": {"logprob": 1.0, "repeats": 1.0}}, question) == 1
    assert reshape_spans(spans, [{}] * 6, {"weights": {"logprob": 1.0, "misfit": -5.0, "capitalised": 0.5}},
                         question) == 0


def test_a_card_that_weighs_an_unknown_span_feature_is_an_error_that_names_the_fix():
    from rag_app.errors import RagError
    from rag_app.services.extractive import SPAN_FEATURES, SpanCandidate, reshape_spans, span_features

    spans = [SpanCandidate("Melbourne", 0, 2, -0.5, 0.0, -0.5)]
    assert tuple(span_features(spans, [{}], "Which city?")[0]) == SPAN_FEATURES
    with pytest.raises(RagError, match="lenght.*fit-spans"):
        reshape_spans(spans, [{}], {"weights": {"logprob": 1.0, "lenght": 2.0}}, "Which city?")
