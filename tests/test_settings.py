"""Settings: misspelled names are errors that name the valid spelling; sections are frozen; shortcuts documented."""

from __future__ import annotations

import json

import pytest

from rag_app.errors import RagError
from rag_app.settings import Settings, SettingsError, check_environment, setting_paths


@pytest.mark.parametrize(("variable", "suggestion"), [
    ("RAG_RETRIEVE__TOPK", "RAG_RETRIEVE__K"),
    ("RAG_RETRIVE__K", "RAG_RETRIEVE__K"),
    ("RAG_MNIST_DIR", "RAG_DEMOS__MNIST_DIR"),
])
def test_a_misspelled_environment_variable_is_an_error_naming_the_valid_one(monkeypatch, variable, suggestion):
    monkeypatch.setenv(variable, "8")
    with pytest.raises(SettingsError, match=f"{variable} \\(did you mean {suggestion}\\?\\)"):
        Settings()


def test_valid_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("RAG_RETRIEVE__K", "8")
    monkeypatch.setenv("RAG_DEMOS__MNIST_DIR", "/data/mnist")
    settings = Settings()
    assert settings.retrieve.k == 8 and str(settings.demos.mnist_dir) == "/data/mnist"


def test_every_env_name_of_the_tree_is_accepted():
    check_environment({"RAG_" + path.replace(".", "__").upper(): "x" for path in setting_paths()})


def test_a_misspelled_override_is_an_error_naming_the_valid_one():
    with pytest.raises(SettingsError, match="unknown setting 'retrieve.topk': did you mean 'retrieve.k'"):
        Settings().with_overrides(**{"retrieve.topk": 8})


def test_a_misspelled_nested_value_is_an_error():
    with pytest.raises(SettingsError, match="unknown setting 'retrieve.topk'"):
        Settings(retrieve={"topk": 8})


def test_a_bad_value_names_the_field_its_variable_and_the_value_without_a_web_page(monkeypatch):
    monkeypatch.setenv("RAG_RETRIEVE__K", "500")
    with pytest.raises(SettingsError) as caught:
        Settings()
    message = str(caught.value)
    assert "retrieve.k (RAG_RETRIEVE__K)" in message and "'500'" in message and "http" not in message


def test_the_rag_constructor_takes_shortcuts_and_names_the_valid_spelling(tmp_path):
    from rag_app.api import RAG

    rag = RAG(Settings(profile="test"), collection="papers", home=str(tmp_path))
    assert rag.settings.store.collection == "papers" and rag.settings.home == tmp_path
    assert RAG(Settings(profile="test"), **{"retrieve.k": 8}).settings.retrieve.k == 8
    with pytest.raises(RagError, match="did you mean 'collection'"):
        RAG(Settings(profile="test"), colection="papers")


def test_sections_are_frozen_and_hashable():
    settings = Settings()
    with pytest.raises(Exception):
        settings.retrieve.k = 8  # type: ignore[misc]
    assert hash(settings.llm) == hash(Settings().llm)


def test_the_test_profile_swaps_in_the_fakes():
    settings = Settings(profile="test")
    assert (settings.embedder.mode, settings.llm.mode) == ("fake", "scripted")


def test_a_store_url_alone_means_a_server():
    assert Settings(store={"url": "http://127.0.0.1:9"}).store.mode == "http"
    with pytest.raises(SettingsError, match="store.url"):
        Settings(store={"mode": "http"})


def test_rag_settings_lists_every_variable_and_a_typo_is_exit_code_2(monkeypatch, capsys):


    from rag_app.cli import main

    monkeypatch.setenv("RAG_RETRIEVE__K", "7")
    monkeypatch.setenv("RAG_LLM__API_KEY", "secret")
    assert main(["settings", "--json"]) == 0
    rows = {row["env"]: row["value"] for row in json.loads(capsys.readouterr().out)}
    assert rows["RAG_RETRIEVE__K"] == 7 and rows["RAG_LLM__API_KEY"] == "***" and len(rows) == len(setting_paths())
    monkeypatch.setenv("RAG_RETRIEVE__TOPK", "8")
    assert main(["collections"]) == 2
    assert "did you mean RAG_RETRIEVE__K?" in capsys.readouterr().err


def test_rag_prepare_indexes_the_bundled_corpus_once(monkeypatch, capsys):
    from rag_app.cli import main

    monkeypatch.setenv("RAG_PROFILE", "test")
    assert main(["prepare"]) == 0
    first = capsys.readouterr().out
    assert "indexed the bundled corpus" in first and "LM ready" in first
    assert main(["collections", "--json"]) == 0
    counts = {c["name"]: c["count"] for c in json.loads(capsys.readouterr().out)}
    assert counts["default"] > 100
    assert main(["prepare"]) == 0  # again: nothing to index
    assert "already holds documents" in capsys.readouterr().out
    assert main(["collections", "--json"]) == 0
    assert {c["name"]: c["count"] for c in json.loads(capsys.readouterr().out)} == counts


def test_the_refusal_threshold_follows_the_embedder_unless_set():
    from rag_app.settings import DEFAULT_MIN_RELEVANCE, FAKE_EMBEDDER_MIN_RELEVANCE, Settings

    assert Settings().refusal_threshold == DEFAULT_MIN_RELEVANCE
    # However the fake embedder comes in (the profile, or a switch to it later), its own calibration applies.
    assert Settings(profile="test").refusal_threshold == FAKE_EMBEDDER_MIN_RELEVANCE
    assert Settings().with_overrides(profile="test").refusal_threshold == FAKE_EMBEDDER_MIN_RELEVANCE
    assert Settings(embedder={"mode": "openai", "base_url": "http://127.0.0.1:1/v1"}).refusal_threshold == \
        DEFAULT_MIN_RELEVANCE
    assert Settings(profile="test", answer={"min_relevance": 0.3}).with_overrides(**{"retrieve.k": 5}) \
        .refusal_threshold == 0.3


@pytest.mark.parametrize(("value", "roots"), [
    ("/data/notes:/data/papers", ("/data/notes", "/data/papers")),
    ('["/data/notes", "/data/papers"]', ("/data/notes", "/data/papers")),
    ("", ()),
])
def test_mcp_write_roots_read_as_a_path_list_or_json(monkeypatch, value, roots):
    monkeypatch.setenv("RAG_MCP__WRITE_ROOTS", value)
    assert tuple(str(root) for root in Settings().mcp.write_roots) == roots
    assert Settings().mcp.allow_writes is False  # writes stay off until allowed


@pytest.mark.parametrize(("value", "problem"), [
    ("notes", "write roots must be absolute paths: notes is not"),
    ("[/data/notes", "not a JSON list of folders"),
])
def test_bad_mcp_write_roots_are_errors_naming_the_variable(monkeypatch, value, problem):
    monkeypatch.setenv("RAG_MCP__WRITE_ROOTS", value)
    with pytest.raises(SettingsError, match="mcp.write_roots \\(RAG_MCP__WRITE_ROOTS\\)") as caught:
        Settings()
    assert problem in str(caught.value)
