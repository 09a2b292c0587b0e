"""Shared fixtures: every data and cache directory points at a temp folder; fakes for fast tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the test run may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "rag_home"
    monkeypatch.setenv("RAG_HOME", str(home))
    for name in list(os.environ):
        if name.startswith("RAG_") and name != "RAG_HOME":
            monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def test_settings(tmp_path):
    """Fake embedder and scripted LM, data under tmp_path."""
    from rag_app.settings import Settings

    return Settings(profile="test", home=tmp_path / "rag_home")


@pytest.fixture
def rag(test_settings):
    from rag_app.api import RAG

    return RAG(test_settings)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The app in-process (test profile, bundled corpus ingested): what a server face must answer."""
    from rag_app.api import RAG
    from rag_app.settings import Settings

    app = RAG(Settings(profile="test", home=tmp_path_factory.mktemp("reference") / "home"))
    app.ensure_corpus()
    return app
