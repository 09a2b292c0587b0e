"""Slice counts from one tokenisation (`TokenSpans`) equal a fresh tokenisation of the slice, and chunking with
them gives the same chunks with far fewer tokenizer calls. A small real WordPiece tokenizer (the `tokenizers`
library, BERT's normaliser and pre-tokenizer) stands in for the embedder's."""

from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece

from ingest.chunking import chunk_document
from ingest.types import Document, Segment
from rag_app.components.embedder.token_spans import TokenSpans, reads_words_independently

PIECES = ["[UNK]", "the", "diffusion", "model", "learn", "##s", "##ing", "to", "de", "##noise", "image", "##s", "in",
          "1", "##0", "steps", ".", ",", "(", ")", "a", "b", "##c", "é", "e", "东", "京", "-", "x"]


def wordpiece() -> Tokenizer:
    tokenizer = Tokenizer(WordPiece({piece: i for i, piece in enumerate(dict.fromkeys(PIECES))}, unk_token="[UNK]",
                                    max_input_chars_per_word=12))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


TOKENIZER = wordpiece()
TEXT = ("The diffusion model learns to denoise images in 10 steps. A diffusion (learning) model, Éé de-noising "
        "东京 xxxxxxxxxxxxxxxxxxxx abc.\n\nImages  learn\tsteps,the model.")


def real_count(text: str) -> int:
    return len(TOKENIZER.encode(text, add_special_tokens=False).ids)


def spans_of(text: str) -> TokenSpans:
    return TokenSpans(TOKENIZER.encode(text, add_special_tokens=False))


def test_every_slice_count_is_exact_or_refused():
    spans = spans_of(TEXT)
    answered = 0
    for start in range(len(TEXT) + 1):
        for end in range(start, len(TEXT) + 1):
            tokens = spans.count(start, end)
            if tokens is not None:
                answered += 1
                assert tokens == real_count(TEXT[start:end]), (start, end, TEXT[start:end])
    assert answered > len(TEXT) ** 2 // 20  # most cuts between words are answered


def test_cuts_at_whitespace_and_punctuation_are_answered_cuts_inside_a_word_are_not():
    spans = spans_of(TEXT)
    words = [(i, i + len(w)) for i, w in ((TEXT.index(w), w) for w in ("diffusion", "denoise", "steps"))]
    for start, end in words:
        assert spans.count(start, end) == real_count(TEXT[start:end])
        assert spans.count(start + 1, end) is None  # "iffusion": another tokenisation than inside "diffusion"
        assert spans.count(start, end - 2) is None
    period = TEXT.index(".")
    assert spans.count(0, period) == real_count(TEXT[:period])  # before the full stop: punctuation is a word
    assert spans.count(0, len(TEXT)) == real_count(TEXT) and spans.count(3, 3) == 0


def test_only_tokenizers_that_read_words_independently_qualify():
    assert reads_words_independently(json.loads(TOKENIZER.to_str()))
    byte_level = wordpiece()
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel()
    assert not reads_words_independently(json.loads(byte_level.to_str()))
    metaspace = wordpiece()
    metaspace.pre_tokenizer = pre_tokenizers.Metaspace()
    assert not reads_words_independently(json.loads(metaspace.to_str()))
    assert not reads_words_independently({"normalizer": None, "pre_tokenizer": {"type": "BertPreTokenizer"},
                                          "model": {"type": "BPE"}})


@pytest.mark.parametrize("seed", range(3))
def test_chunks_are_the_same_with_slice_counts_with_fewer_tokenizer_calls(seed):
    rng = random.Random(seed)
    words = [p for p in PIECES if not p.startswith("##") and p != "[UNK]"] + ["learning", "images", "denoise"]

    def sentence() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(3, 18))) + "."

    text = "\n\n".join(" ".join(sentence() for _ in range(rng.randint(1, 9))) for _ in range(12))
    doc = Document("d", "The diffusion model", "md", [Segment(text, section="Steps"), Segment(sentence())])
    calls = {"plain": 0, "spans": 0}

    def counter(mode):
        def count(piece: str) -> int:
            calls[mode] += 1
            return real_count(piece)
        return count

    plain = chunk_document(doc, counter("plain"), 40, overlap_tokens=8)
    with_spans = chunk_document(doc, counter("spans"), 40, overlap_tokens=8, token_spans=spans_of)
    assert with_spans == plain and len(plain) > 3
    assert all(chunk.n_tokens == real_count(chunk.embed_text) <= 40 for chunk in with_spans)
    assert calls["spans"] < calls["plain"] / 2
