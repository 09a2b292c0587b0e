"""The README's "Use it from LangChain" snippets run as written (test profile fakes, over a docs/ folder)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "docs"


def langchain_snippets() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Use it from LangChain\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_langchain_snippets_run_as_written(tmp_path, monkeypatch, capsys):
    snippets = langchain_snippets()
    assert len(snippets) == 3
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(FIXTURES / "odd_machines.md", docs)
    shutil.copy(FIXTURES / "lantern_society.txt", docs / "lantern_society.md")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_PROFILE", "test")

    outputs = []
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), {"__name__": "__readme__"})
        outputs.append(capsys.readouterr().out)
    loaded, chained, chatted = outputs
    assert "added=2" in loaded and "[]" in loaded
    assert "Ada Quill invented it in 1987" in chained
    assert "Ada Quill" in chatted and "cited: ['docs/odd_machines.md']" in chatted

    exec(compile(snippets[0], "README.md", "exec"), {"__name__": "__readme__"})
    assert "unchanged=2" in capsys.readouterr().out  # run again: nothing written
