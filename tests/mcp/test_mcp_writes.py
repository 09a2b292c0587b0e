"""Writes over MCP, for real over stdio: off unless allowed (tests/mcp/test_mcp_stdio.py: the tools are not even
listed); on, `ingest_files` reads only inside the allowed folders (symlinks resolved, `..` refused, nothing ingested
when one path is refused), reports progress file by file, and `delete_document` removes what it added."""

from __future__ import annotations

import os
import shutil

import pytest
from mcp_support import FIXTURES, READ_TOOLS, WRITE_TOOLS, Client, data, error_text, stdio_transport

SECRET = "The vault combination is 31-07-1999 and lives in the outside folder."


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """root/ (allowed): papers/ with two fixture files, notes/ with a link out; outside/ (not allowed)."""
    base = tmp_path_factory.mktemp("writes")
    root, outside = base / "root", base / "outside"
    (root / "papers").mkdir(parents=True)
    (root / "notes").mkdir()
    outside.mkdir()
    for name in ("odd_machines.md", "lantern_society.txt"):
        shutil.copy(FIXTURES / "docs" / name, root / "papers" / name)
    (outside / "secret.md").write_text(f"# Vault\n\n{SECRET}\n", encoding="utf-8")
    (root / "notes" / "idea.md").write_text("# Idea\n\nThe marmot choir rehearses on Mondays.\n", encoding="utf-8")
    os.symlink(outside / "secret.md", root / "notes" / "link_out.md")
    os.symlink(outside, root / "door")
    return base


@pytest.fixture(scope="module")
def client(layout):
    client = Client(stdio_transport(layout / "home", "--collection", "notes", "--allow-writes",
                                    "--write-root", str(layout / "root")))
    yield client
    client.close()


def sources(client) -> list[str]:
    return [d["source"] for d in data(client.call("list_documents"))["documents"]]


def test_the_write_tools_are_listed_when_allowed(client, layout):
    tools = client.tools()
    assert set(tools) == READ_TOOLS | WRITE_TOOLS
    assert tools["delete_document"].annotations.destructive_hint is True
    assert tools["ingest_files"].annotations.read_only_hint is False
    assert str(layout / "root") in client.init.instructions


@pytest.mark.parametrize("path", [
    "{base}/outside/secret.md",  # outside, absolute
    "../outside/secret.md",  # relative, climbing out of the root
    "{base}/root/papers/../../outside/secret.md",  # `..` inside an absolute path
    "{base}/root/door/secret.md",  # a folder link inside the root leading out
    "{base}/root/notes/link_out.md",  # a file link inside the root leading out
    "{base}/root",  # ... fine alone, but listed with one refused path: nothing is ingested
])
def test_a_path_outside_the_allowed_folders_is_refused_and_nothing_is_ingested(client, layout, path):
    paths = [path.format(base=layout)]
    if paths[0] == f"{layout}/root":
        paths.append(f"{layout}/outside")
    reason = error_text(client.call("ingest_files", {"paths": paths}))
    assert "outside the folders ingest_files may read" in reason and str(layout / "root") in reason
    assert "RAG_MCP__WRITE_ROOTS" in reason
    assert sources(client) == []  # nothing was written


def test_ingest_files_reads_an_allowed_folder_with_progress_and_is_searchable(client, layout):
    progress: list = []
    result = data(client.call("ingest_files", {"paths": ["papers", f"{layout}/root/notes"]}, progress=progress))
    assert result["collection"] == "notes"
    assert result["files"]["added"] == 3 and result["chunks_written"] >= 3
    # The link out of notes/ is found by the walk and not followed.
    assert result["failed"] == [{"path": "link_out.md", "error": "symlink to a file outside the ingested folder: "
                                                                  "not followed; ingest that file directly"}]
    assert progress and progress[-1][:2] == (3, 3) and "3/3 files" in progress[-1][2]
    assert sources(client) == ["idea.md", "lantern_society.txt", "odd_machines.md"]
    top = data(client.call("search_documents", {"query": "Who invented the zorbulator?", "k": 1}))["chunks"][0]
    assert top["source"] == "odd_machines.md"
    found = data(client.call("search_documents", {"query": "vault combination", "k": 5}))["chunks"]
    assert all(SECRET not in chunk["text"] for chunk in found)
    again = data(client.call("ingest_files", {"paths": [f"{layout}/root/papers"]}))
    assert again["files"]["unchanged"] == 2 and again["chunks_written"] == 0


def test_delete_document_removes_what_was_ingested(client):
    ingested = data(client.call("ingest_files", {"paths": ["papers/odd_machines.md"]}))
    assert ingested["files"]["seen"] == 1
    deleted = data(client.call("delete_document", {"source": "odd_machines.md"}))
    assert deleted == {"collection": "notes", "source": "odd_machines.md", "chunks": deleted["chunks"]}
    assert deleted["chunks"] > 0 and "odd_machines.md" not in sources(client)
    found = data(client.call("search_documents", {"query": "Who invented the zorbulator?"}))["chunks"]
    assert "odd_machines.md" not in [c["source"] for c in found]
    assert "no document 'odd_machines.md' in collection 'notes'" in error_text(
        client.call("delete_document", {"source": "odd_machines.md"}))


@pytest.mark.parametrize(("arguments", "reason"), [
    ({"paths": []}, "paths\n  List should have at least 1 item"),
    ({"paths": ["papers/missing.md"]}, "papers/missing.md: no such file or folder"),
    ({"paths": ["papers"], "collection": "x"}, "collection name 'x' is invalid"),
])
def test_bad_ingest_calls_are_tool_errors(client, arguments, reason):
    assert reason in error_text(client.call("ingest_files", arguments))


def test_writes_allowed_without_folders_refuse_every_path_naming_the_setting(tmp_path):
    """Allowed through the environment this time, with no folder listed."""
    client = Client(stdio_transport(tmp_path / "home", "--collection", "notes", RAG_MCP__ALLOW_WRITES="true"))
    try:
        reason = error_text(client.call("ingest_files", {"paths": [str(FIXTURES / "docs")]}))
        assert "no folder is open to ingest_files" in reason and "RAG_MCP__WRITE_ROOTS" in reason
        assert "Adding or deleting" not in client.init.instructions and "these folders: none" in client.init.instructions
    finally:
        client.close()
