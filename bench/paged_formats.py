"""DOCX, PPTX and HTML read as a person reads them (issue 27, item 4), scored on generated documents.

    python bench/paged_formats.py [--widths 34,48,62] [--seeds 0,1,2] [--json out.json] [--show FORMAT]

The same handbook (`tests/fixtures/paged_docs.py`) is written as DOCX, PPTX and HTML for every wrap width and seed:
prose hard-wrapped with soft line breaks (some line ends hyphenated by hand), bulleted and numbered lists after a
lead-in, an address whose breaks are meant, headings, a table, a ligature, and page furniture (running header and
footer, navigation). Each file goes through the loader registry (`ingest.loaders.load_file`) and the real chunker
(`ingest.chunking.chunk_document`, the packaged MiniLM tokenizer, the default 200/32 tokens). Scored, per format:
- **whole**: known sentences found inside one chunk, whitespace collapsed;
- **one sentence**: of those, the ones `rag_app.text.split_sentences` (evidence ranking, claim checking) gives back
  as one sentence, i.e. not cut by a stray line break;
- **section**: known sentences whose chunk carries the section they stand under (DOCX/HTML: the heading path,
  PPTX: the slide title);
- **paragraphs**: consecutive prose paragraphs still parted by a blank line (or by a chunk boundary);
- **items**: list items on a line of their own with a marker of the right kind ("-" or "1.");
- **attached**: lists whose lead-in sentence is followed, on the next line, by the first item, all in one chunk;
- **meant breaks**: lines of the address still on lines of their own;
- in the stored text: unjoined line-end hyphens ("schedu-\\nled", "schedu- led"), ligature code points
  U+FB00-FB06, control characters (PowerPoint's line break comes out of python-pptx as U+000B), and chunks holding
  the running header, footer or navigation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "bench"))

_UNJOINED_HYPHEN = re.compile(r"[A-Za-z]-[^\S\n]*\n\s*[a-z]|[a-z]- [a-z]")
_LIGATURE = re.compile("[\ufb00-\ufb06]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")
_NUMBER = re.compile(r"^\s*\d+[.)]\s+(.*)$")


def collapse(text: str) -> str:
    return " ".join(text.split())


def score_file(fmt: str, path: Path, count) -> Counter:
    from ingest.chunking import chunk_document
    from ingest.loaders import load_file
    from rag_app.text import split_sentences
    from tests.fixtures import paged_docs as handbook

    (doc,) = load_file(path, path.name)
    chunks = chunk_document(doc, count, 254, overlap_tokens=32, target_tokens=200)
    texts = [chunk.text for chunk in chunks]
    collapsed = [collapse(text) for text in texts]
    stored = "\n\n".join(segment.text for segment in doc.segments)
    tally: Counter = Counter()

    for sentence, path_, slide_title in handbook.known_sentences():
        tally["sentences"] += 1
        holding = [i for i, text in enumerate(collapsed) if sentence in text]
        if not holding:
            continue
        tally["whole"] += 1
        if any(sentence in map(collapse, split_sentences(texts[i])) for i in holding):
            tally["one_sentence"] += 1
        expected = {"docx": path_, "html": f"{handbook.TITLE} > {path_}", "pptx": slide_title}[fmt]
        tally["section"] += any(chunks[i].section == expected for i in holding)

    for section in handbook.HANDBOOK:
        prose = [block for block in section.blocks if isinstance(block, handbook.Prose)]
        for first, second in itertools.pairwise(prose):
            tally["paragraph_pairs"] += 1
            ending, opening = (r"\s+".join(map(re.escape, s.split())) for s in (first.sentences[-1], second.sentences[0]))
            match = re.search(rf"{ending}(\s+){opening}", stored)
            tally["paragraphs"] += match is None or "\n\n" in match.group(1)

    for block in handbook.item_lists():
        tally["lists"] += 1
        marker = _NUMBER if block.numbered else _BULLET
        lines = [line for text in texts for line in text.split("\n")]
        kept = [any((m := marker.match(line)) and collapse(m.group(1)) == item for line in lines)
                for _, item in block.items]
        tally["items"] += len(block.items)
        tally["items_kept"] += sum(kept)
        for text in texts:
            rows = text.split("\n")
            if block.lead_in in rows and rows.index(block.lead_in) + 1 < len(rows):
                following = rows[rows.index(block.lead_in) + 1:]
                if collapse(following[0]).endswith(block.items[0][1]) and all(
                        any(collapse(row).endswith(item) for row in following) for _, item in block.items):
                    tally["attached"] += 1
                    break

    for block in handbook.line_blocks():
        lines = {line.strip() for text in texts for line in text.split("\n")}
        tally["meant_lines"] += len(block.lines)
        tally["meant_kept"] += sum(line in lines for line in block.lines)

    tally["unjoined_hyphens"] += len(_UNJOINED_HYPHEN.findall(stored))
    tally["ligatures"] += len(_LIGATURE.findall(stored))
    tally["control_chars"] += len(_CONTROL.findall(stored))
    furniture = (handbook.HEADER, handbook.FOOTER, "Home | Moorings")
    tally["furniture_chunks"] += sum(any(text in chunk for text in furniture) for chunk in texts)
    tally["chunks"] += len(chunks)
    return tally


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} % ({part}/{whole})" if whole else "-"


def main() -> None:
    from pdf_extractors import token_counter

    from tests.fixtures.paged_docs import WRITERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="34,48,62", help="wrap widths in characters")
    parser.add_argument("--seeds", default="0,1,2", help="seeds for where long words are hyphenated")
    parser.add_argument("--json", type=Path, help="write the tallies here")
    parser.add_argument("--show", choices=sorted(WRITERS), help="print one file's chunks (first width and seed)")
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    count = token_counter()

    results: dict[str, Counter] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, write in WRITERS.items():
            tally: Counter = Counter()
            for width in widths:
                for seed in seeds:
                    path = Path(tmp) / f"handbook_w{width}_s{seed}.{fmt}"
                    path.write_bytes(write(width, seed))
                    tally += score_file(fmt, path, count)
                    if args.show == fmt and (width, seed) == (widths[0], seeds[0]):
                        _show(path, count)
            results[fmt] = tally

    rows = [
        ("sentences whole in one chunk", lambda t: share(t["whole"], t["sentences"])),
        ("... read as one sentence", lambda t: share(t["one_sentence"], t["sentences"])),
        ("... under their section", lambda t: share(t["section"], t["sentences"])),
        ("paragraph breaks kept", lambda t: share(t["paragraphs"], t["paragraph_pairs"])),
        ("list items with their marker", lambda t: share(t["items_kept"], t["items"])),
        ("lists attached to their lead-in", lambda t: share(t["attached"], t["lists"])),
        ("meant line breaks kept (address)", lambda t: share(t["meant_kept"], t["meant_lines"])),
        ("unjoined line-end hyphens", lambda t: str(t["unjoined_hyphens"])),
        ("ligature code points", lambda t: str(t["ligatures"])),
        ("control characters", lambda t: str(t["control_chars"])),
        ("chunks with header/footer/nav", lambda t: str(t["furniture_chunks"])),
        ("chunks", lambda t: str(t["chunks"])),
    ]
    formats = list(results)
    print(f"{len(widths) * len(seeds)} files per format (widths {args.widths}, seeds {args.seeds})\n")
    print("| figure | " + " | ".join(formats) + " |")
    print("|---|" + "---:|" * len(formats))
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell(results[fmt]) for fmt in formats) + " |")
    if args.json:
        args.json.write_text(json.dumps({fmt: dict(t) for fmt, t in results.items()}, indent=1))


def _show(path: Path, count) -> None:
    from ingest.chunking import chunk_document
    from ingest.loaders import load_file

    (doc,) = load_file(path, path.name)
    for chunk in chunk_document(doc, count, 254, overlap_tokens=32, target_tokens=200):
        print(f"--- section={chunk.section!r} {chunk.extra}\n{chunk.text}")
    print()


if __name__ == "__main__":
    main()
