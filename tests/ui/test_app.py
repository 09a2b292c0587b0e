"""The Streamlit app, run headless with `AppTest` on the fake embedder and the scripted LM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "streamlit_app.py")
FIXTURE_DOCS = REPO / "tests" / "fixtures" / "docs"
TIMEOUT = 180  # the test machine is shared and slow; a first run ingests the bundled corpus


@pytest.fixture
def app(monkeypatch, _isolated_home):
    monkeypatch.setenv("RAG_PROFILE", "test")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def labels(elements) -> list[str]:
    return [element.label for element in elements]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_first_start_ingests_the_bundled_corpus(app, _isolated_home):
    from rag_app.api import RAG, bundled_corpus_dir
    from rag_app.settings import Settings

    rag = RAG(Settings(profile="test", home=_isolated_home))
    corpus_files = len(list(bundled_corpus_dir().glob("*.md")))
    assert rag.store().count() > corpus_files
    assert not app.error
    assert app.chat_input, "the chat page is the default page"


def test_asking_shows_the_answer_and_its_sources(app):
    app.chat_input[0].set_value("What does a variational autoencoder learn?").run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assistant = [m for m in app.chat_message if m.name == "assistant"]
    assert len(assistant) == 1
    entry = app.session_state["chat"]["default"][-1]
    answer = assistant[0].markdown[0].value
    assert answer == entry["content"] == entry["answer"].text and not entry["answer"].refused
    cited = re.search(r"\[(\d+)\]", answer).group(1)
    cards = labels(assistant[0].expander)
    # One card per source, in source order; the one the answer cites first says so.
    at = next(i for i, card in enumerate(cards) if card.startswith(f"[{cited}] "))
    assert ".md — " in cards[at] and cards[at].endswith("· cited")
    snippet = assistant[0].expander[at].markdown[0].value
    assert "<mark>" in snippet
    source = entry["answer"].sources[int(cited) - 1]  # the marks are the spans the answer service says were cited
    spans = [" ".join(source.text[begin:end].split()) for begin, end in source.cited_spans]
    marked = [re.sub(r"\\(.)", r"\1", m) for m in re.findall(r"<mark>(.*?)</mark>", snippet)]
    # Every mark is a cited span, or the piece of one the snippet's window cuts.
    assert spans[0] in marked and all(any(m in span for span in spans) for m in marked)
    assert any("retrieve" in c.value and "total" in c.value and "scripted" in c.value for c in assistant[0].caption)


@pytest.fixture
def pdf_app(monkeypatch, _isolated_home, tmp_path):
    """The app over a default collection holding one PDF (so the bundled corpus is not ingested)."""
    import shutil

    from rag_app.api import RAG
    from rag_app.settings import Settings

    folder = tmp_path / "pdfs"
    folder.mkdir()
    shutil.copy(FIXTURE_DOCS / "orchard_survey.pdf", folder)
    assert RAG(Settings(profile="test", home=_isolated_home)).ingest([folder]).files.added == 1
    monkeypatch.setenv("RAG_PROFILE", "test")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at, folder / "orchard_survey.pdf"


def test_a_pdf_source_card_shows_the_cited_page(pdf_app):
    app, pdf = pdf_app
    app.chat_input[0].set_value("When were the oldest Velvet Pippin trees grafted?").run()
    assert not app.exception, app.exception
    answer = app.session_state["chat"]["default"][-1]["answer"]
    assert not answer.refused and answer.sources[0].cited and answer.sources[0].page == 1
    assistant = app.chat_message[1]
    assert labels(assistant.expander)[0].startswith("[1] orchard_survey.pdf — page 1")
    card = assistant.expander[0]
    assert not card.image, "the page is drawn only when asked for"
    toggle = next(t for t in card.toggle if t.label == "Show page")
    toggle.set_value(True).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    card = app.chat_message[1].expander[0]
    (image,) = card.image
    sentences = "sentence" if len(answer.sources[0].cited_spans) == 1 else "sentences"
    assert image.captions == [f"Page 1 of orchard_survey.pdf, the cited {sentences} highlighted"]
    assert image.value[0].endswith(".png")
    assert not [c for c in card.caption if c.value.startswith("Note:")]


def test_a_pdf_whose_file_is_gone_says_so_in_its_card(pdf_app):
    app, pdf = pdf_app
    app.chat_input[0].set_value("When were the oldest Velvet Pippin trees grafted?").run()
    pdf.unlink()
    next(t for t in app.chat_message[1].expander[0].toggle if t.label == "Show page").set_value(True).run()
    assert not app.exception, app.exception
    card = app.chat_message[1].expander[0]
    assert not card.image
    assert any("no longer exists" in i.value and "re-ingest" in i.value for i in card.info)


def test_an_answer_is_kept_when_its_cards_are_interrupted(app, monkeypatch):
    """A click on a card's widget while the answer's run is still drawing reruns the script at the next Streamlit
    call: the turn must already be in the history, or the answer vanishes (seen in a real browser on a slow CI)."""
    import rag_app.ui.components as components  # the page script imports its cards from here on each run

    drawn = components.source_cards

    def interrupted(*args, **kwargs):
        raise RuntimeError("interrupted by a rerun")

    monkeypatch.setattr(components, "source_cards", interrupted)
    app.chat_input[0].set_value("What does a variational autoencoder learn?").run()
    history = app.session_state["chat"]["default"]
    assert [entry["role"] for entry in history] == ["user", "assistant"]
    assert history[0]["content"] == "What does a variational autoencoder learn?"
    monkeypatch.setattr(components, "source_cards", drawn)
    app.run()  # the rerun the click asked for
    assert not app.exception, app.exception
    (assistant,) = [m for m in app.chat_message if m.name == "assistant"]
    assert assistant.markdown[0].value == history[1]["content"] and assistant.expander


def test_the_temperature_slider_shows_only_where_it_has_an_effect(app, monkeypatch):
    assert "Temperature" not in labels(app.slider)  # extractive decoding is greedy
    monkeypatch.setenv("RAG_ANSWER__STRATEGY", "generative")
    generative = AppTest.from_file(APP, default_timeout=TIMEOUT)
    generative.run()
    assert not generative.exception, generative.exception
    assert "Temperature" in labels(generative.slider)


def test_show_retrieved_chunks_lists_every_chunk_in_full(app):
    app.chat_input[0].set_value("What does a variational autoencoder learn?").run()
    app.toggle(key="show_chunks").set_value(True).run()
    assert not app.exception, app.exception
    answer = app.session_state["chat"]["default"][-1]["answer"]
    assistant = app.chat_message[1]
    assert len(assistant.expander) == len(answer.sources) == 6  # settings.retrieve.k
    assert assistant.expander[0].text[0].value == answer.sources[0].text


def test_a_follow_up_keeps_the_history(app):
    app.chat_input[0].set_value("What is a GAN?").run()
    app.chat_input[0].set_value("How is it trained?").run()
    assert not app.exception, app.exception
    assert [m.name for m in app.chat_message] == ["user", "assistant", "user", "assistant"]
    history = app.session_state["chat"]["default"]
    assert len(history) == 4
    assert "GAN" in history[-1]["answer"].standalone_question  # the follow-up was made standalone
    assert any(c.value.startswith("Searched for:") for c in app.chat_message[3].caption)


def test_a_question_the_documents_do_not_answer_is_refused(app):
    app.chat_input[0].set_value("zzqx vlorp?").run()
    assert not app.exception, app.exception
    assistant = app.chat_message[1]
    assert app.session_state["chat"]["default"][-1]["answer"].refused
    assert "don't" in assistant.info[0].value and not assistant.expander


def test_a_folder_on_the_server_gets_ingested(app):
    app.switch_page("rag_app/ui/ingest_page.py").run()
    assert not app.exception, app.exception
    app.text_input(key="new_collection").input("fixtures")
    app.text_input(key="ingest_path").input(str(FIXTURE_DOCS))
    button(app, "Ingest folder").click().run()
    assert not app.exception, app.exception
    assert app.session_state["collection"] == "fixtures"
    summary = app.session_state["ingest_summary"]
    assert summary.collection == "fixtures" and summary.files.added >= 5
    assert any("added" in s.value for s in [*app.success, *app.warning])
    sources = app.dataframe[0].value["source"].tolist()
    assert "odd_machines.md" in sources and "lantern_society.txt" in sources


def test_uploaded_files_get_ingested_into_a_new_collection(app, _isolated_home):
    app.switch_page("rag_app/ui/ingest_page.py").run()
    app.text_input(key="new_collection").input("notes").run()
    app.file_uploader[0].set_value([
        ("otters.md", b"# Otters\n\nOtters hold hands while they sleep.\n", "text/markdown"),
        ("notes (draft).txt", b"Marmots whistle to warn each other.\n", "text/plain"),
        ("empty.md", b"", "text/markdown"),
    ]).run()
    button(app, "Ingest uploaded files").click().run()
    assert not app.exception, app.exception
    assert app.session_state["collection"] == "notes"
    summary = app.session_state["ingest_summary"]
    assert summary.collection == "notes" and summary.files.added == 2
    folder = _isolated_home / "uploads" / "notes"
    assert sorted(p.name for p in folder.iterdir()) == ["notes _draft_.txt", "otters.md"]
    failures = app.table[0].value
    assert failures["file"].tolist() == ["empty.md"] and "empty" in failures["reason"].iloc[0]
    assert sorted(app.dataframe[0].value["source"]) == ["notes _draft_.txt", "otters.md"]
    assert not app.file_uploader[0].value, "the uploader is emptied after ingesting"


def test_a_document_can_be_deleted(app, _isolated_home):
    from rag_app.services.uploads import save_uploads
    from rag_app.settings import Settings

    saved = save_uploads(Settings(profile="test", home=_isolated_home), "notes",
                         [("otters.md", b"# Otters\n\nOtters hold hands.\n")]).saved
    app.switch_page("rag_app/ui/ingest_page.py").run()
    app.text_input(key="new_collection").input("notes")
    app.text_input(key="ingest_path").input(str(saved[0]))
    button(app, "Ingest folder").click().run()
    assert not app.exception, app.exception
    assert app.dataframe[0].value["source"].tolist() == ["otters.md"]

    app.multiselect(key="delete_notes").select("otters.md (1 chunks)").run()
    button(app, "Delete selected").click().run()
    assert not app.exception, app.exception
    assert any("Deleted 1 document" in s.value for s in app.success)
    assert not app.dataframe
    assert not saved[0].exists()


def test_a_collection_can_be_dropped_after_typing_its_name(app, tmp_path):
    from rag_app.api import RAG

    doc = tmp_path / "otters.md"
    doc.write_text("# Otters\n\nOtters hold hands.\n", encoding="utf-8")
    app.switch_page("rag_app/ui/ingest_page.py").run()
    app.text_input(key="new_collection").input("notes")
    app.text_input(key="ingest_path").input(str(doc))
    button(app, "Ingest folder").click().run()
    assert app.dataframe[0].value["source"].tolist() == ["otters.md"]

    assert button(app, "Delete collection").disabled
    app.text_input(key="drop_notes").input("notes").run()
    button(app, "Delete collection").click().run()
    assert not app.exception, app.exception
    assert any("Deleted the collection notes" in s.value for s in app.success)
    assert "notes" not in {c.name for c in RAG().collections()}


def test_a_missing_folder_shows_an_error(app):
    app.switch_page("rag_app/ui/ingest_page.py").run()
    app.text_input(key="ingest_path").input("/no/such/folder")
    button(app, "Ingest folder").click().run()
    assert not app.exception, app.exception
    assert any("does not exist" in e.value for e in app.error)


def test_a_dead_chroma_server_shows_an_error_not_a_traceback(monkeypatch, _isolated_home):
    monkeypatch.setenv("RAG_PROFILE", "test")
    monkeypatch.setenv("RAG_STORE__URL", "http://127.0.0.1:9")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert at.error and any("127.0.0.1:9" in e.value for e in at.error)
    assert len(at.error) == 1, "the start-up check and the page fail alike; the message shows once"
    at.switch_page("rag_app/ui/ingest_page.py").run()
    assert not at.exception, at.exception
    assert any("127.0.0.1:9" in e.value for e in at.error)


def test_invalid_settings_show_an_error(monkeypatch, _isolated_home):
    monkeypatch.setenv("RAG_PROFILE", "test")
    monkeypatch.setenv("RAG_RETRIEVE__K", "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert any("retrieve.k" in e.value for e in at.error)


def _fake_run(runs_dir: Path, name: str, created: str) -> Path:
    from PIL import Image

    out = runs_dir / f"{name}-tiny-{created.replace(':', '')}"
    out.mkdir(parents=True)
    Image.new("L", (32, 32), 200).save(out / "samples.png")
    Image.new("L", (64, 32), 100).save(out / "curve.png")
    (out / "config.json").write_text(json.dumps({"demo": name, "preset": "tiny", "created": created}))
    (out / "metrics.json").write_text(json.dumps({"quality": 0.8125, "final_loss": 0.0312, "steps": 300}))
    return out


def test_the_demos_page_shows_the_gallery_of_earlier_runs(app, _isolated_home):
    _fake_run(_isolated_home / "runs", "vae", "2024-05-01T10:00:00")
    _fake_run(_isolated_home / "runs", "autoencoder", "2024-05-02T10:00:00")
    app.switch_page("rag_app/ui/demos_page.py").run()
    assert not app.exception, app.exception
    assert "vae" in app.selectbox(key="demo_name").options
    gallery = labels(app.expander)
    assert gallery[0].startswith("autoencoder · tiny") and gallery[1].startswith("vae · tiny")
    assert "quality 0.812" in gallery[1]
    metrics = app.expander[0].table[0].value
    assert "quality" in metrics["metric"].tolist()


def test_training_a_demo_shows_progress_samples_and_metrics(app, monkeypatch, _isolated_home):
    # Training for real takes minutes on a loaded 2-core machine (the demos have their own tests): a stand-in
    # run_demo reports progress and writes a run folder the way the real one does.
    import rag_app.demos as demos

    calls = []

    def fake_run_demo(name, preset, out_dir, device, progress, settings=None):
        for step in (1, 50, 100):
            progress(step, 100, {"loss": 1.0 / step})
        created = "2024-06-01T12:00:00"
        out = _fake_run(Path(out_dir).parent, name, created)
        calls.append((name, preset, device, Path(out_dir).parent))
        return demos.DemoResult(name, preset, out, {"quality": 0.75}, {"samples": out / "samples.png"})

    monkeypatch.setattr(demos, "run_demo", fake_run_demo)
    app.switch_page("rag_app/ui/demos_page.py").run()
    app.selectbox(key="demo_name").select("autoencoder").run()
    app.radio(key="demo_preset").set_value("tiny").run()
    button(app, "Train").click().run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert calls == [("autoencoder", "tiny", "auto", _isolated_home / "runs")]
    assert any(s.value.startswith("Latest run: autoencoder-tiny") for s in app.subheader)
    assert app.table[0].value["metric"].tolist() == ["quality"]
    assert labels(app.expander)[0].startswith("autoencoder · tiny")
