"""The upload service stores files inside the data home, or rejects them with a reason."""

from __future__ import annotations

import pytest

from rag_app.errors import RagError
from rag_app.services.uploads import MAX_NAME_CHARS, sanitize_filename, save_uploads


@pytest.mark.parametrize("name, expected", [
    ("notes.md", "notes.md"),
    ("my notes (v2).md", "my notes _v2_.md"),
    ("dir/sub/report.txt", "report.txt"),
    (".hidden.md", "hidden.md"),
    ("émigré.md", "_migr_.md"),
])
def test_sanitize_keeps_a_safe_base_name(name, expected):
    assert sanitize_filename(name) == expected


@pytest.mark.parametrize("name, reason", [
    ("../etc/passwd", "'..'"),
    ("a/../../b.md", "'..'"),
    ("..\\windows\\x.md", "'..'"),
    ("/etc/passwd", "absolute"),
    ("C:\\temp\\x.md", "absolute"),
    ("C:x.md", "absolute"),
    ("\\\\server\\share\\x.md", "absolute"),
    ("evil\x00.md", "NUL"),
    ("", "empty"),
    ("...", "no usable"),
    ("???", "no usable"),
])
def test_sanitize_rejects_dangerous_names(name, reason):
    with pytest.raises(RagError, match=reason):
        sanitize_filename(name)


def test_long_names_are_cut_keeping_the_extension():
    name = sanitize_filename("a" * 500 + ".md")
    assert len(name) == MAX_NAME_CHARS and name.endswith(".md")


def test_save_uploads_stores_inside_the_collection_folder(test_settings):
    result = save_uploads(test_settings, "papers", [("a.md", b"# A\n\ntext"), ("../../x.md", b"bad"),
                                                    ("big.txt", b"x" * 2000), ("empty.txt", b"")], max_mb=0.001)
    folder = test_settings.uploads_dir / "papers"
    assert result.saved == [folder / "a.md"]
    assert (folder / "a.md").read_bytes() == b"# A\n\ntext"
    assert [r["name"] for r in result.rejected] == ["../../x.md", "big.txt", "empty.txt"]
    assert "limit" in result.rejected[1]["error"] and "empty" in result.rejected[2]["error"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.md"]  # no temp files left behind
    assert not (test_settings.home.parent / "x.md").exists()


def test_a_reupload_replaces_the_earlier_version(test_settings):
    save_uploads(test_settings, "default", [("a.md", b"one")])
    result = save_uploads(test_settings, "default", [("a.md", b"two")])
    assert result.saved[0].read_bytes() == b"two"


def test_a_symlink_planted_in_the_folder_is_not_followed(test_settings, tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("keep")
    folder = test_settings.uploads_dir / "default"
    folder.mkdir(parents=True)
    (folder / "link.md").symlink_to(outside)
    result = save_uploads(test_settings, "default", [("link.md", b"overwrite")])
    assert result.saved == [] and "outside" in result.rejected[0]["error"]
    assert outside.read_text() == "keep"


def test_an_invalid_collection_is_refused(test_settings):
    with pytest.raises(RagError, match="collection name"):
        save_uploads(test_settings, "../x", [("a.md", b"x")])
