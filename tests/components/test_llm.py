"""LM components: the scripted fake, the OpenAI-compatible backend against a local fake server, the factory."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag_app.components.llm import LLM_BACKENDS, OpenAILLM, ScriptedLLM, TransformersLLM, get_llm
from rag_app.components.llm.streaming import StopStreamer
from rag_app.errors import RagError
from rag_app.services.extractive import stream_span
from rag_app.settings import Settings
from tests.fixtures.tiny_lm import VOCAB, make_tiny_lm


def test_scripted_llm_replies_in_order_and_records_calls():
    llm = ScriptedLLM(["first reply", "second reply"])
    msgs = [{"role": "user", "content": "hi"}]
    assert llm.generate(msgs) == "first reply"
    assert list(llm.stream(msgs)) == ["second ", "reply"]
    assert llm.generate(msgs) == "second reply"  # the last one repeats
    assert len(llm.calls) == 3


def test_scripted_llm_default_quotes_the_first_source():
    llm = ScriptedLLM()
    user = "<source id=2>\nParis is the capital. It is big.\n</source>\nQuestion: capital?"
    assert llm.generate([{"role": "user", "content": user}]) == "Paris is the capital [2]."


def test_stop_strings_end_generation_and_are_not_streamed():
    llm = ScriptedLLM(["alpha beta STOP gamma"])
    pieces = list(llm.stream([{"role": "user", "content": "x"}], stop=["STOP"]))
    assert "".join(pieces).strip() == "alpha beta"


def test_stop_streamer_holds_back_a_partial_stop():
    streamer = StopStreamer(["\nQuestion:"])
    assert streamer.feed("Paris\nQue") == "Paris"
    assert streamer.feed("Paris\nQuestion: more") == ""
    assert streamer.done


def test_scripted_stream_span_is_a_verbatim_evidence_span():
    llm = ScriptedLLM(["It was the Denver Broncos, I think"])
    assert not llm.exposes_logits
    span = "".join(stream_span(llm, [{"role": "user", "content": "q"}], ["The Denver Broncos won in 2016."]))
    assert span == "The Denver Broncos"


class _FakeOpenAI(BaseHTTPRequestHandler):
    """A stand-in OpenAI server on loopback: models "tiny" and "m"; "missing" is not served, "echo" answers with
    the reply prefix, "drop" closes the stream half-way."""

    requests: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server API
        body = json.dumps({"object": "list", "data": [{"id": "tiny"}, {"id": "m"}, {"id": "echo"}, {"id": "drop"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if body["model"] == "missing":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "model not found"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        pieces = {"echo": ["Ans", "wer:", " Paris", " [1]"], "drop": ["Paris", " is"]}.get(
            body["model"], ["Paris", " is the", " capital [1]", "."])
        for piece in pieces:
            chunk = {"choices": [{"delta": {"content": piece}, "index": 0}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        if body["model"] == "drop":
            return  # the server goes away before finishing the reply
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def fake_server():
    _FakeOpenAI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_backend_streams_sse(fake_server):
    llm = OpenAILLM(fake_server, "tiny", api_key="secret")
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    pieces = list(llm.stream(messages, max_new_tokens=20, stop=["\n\n"]))
    assert pieces == ["Paris", " is the", " capital [1]", "."]
    sent = _FakeOpenAI.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer secret"
    assert sent["body"]["stream"] is True and sent["body"]["max_tokens"] == 20
    assert sent["body"]["messages"] == messages


def test_openai_backend_span_snaps_to_evidence(fake_server):
    llm = OpenAILLM(fake_server, "tiny")
    span = "".join(stream_span(llm, [{"role": "user", "content": "q"}], ["Its capital is Paris, on the Seine."]))
    assert span == "Paris"


def test_openai_unknown_model_is_named_with_the_served_ones(fake_server):
    with pytest.raises(RagError) as caught:
        list(OpenAILLM(fake_server, "missing").stream([{"role": "user", "content": "q"}]))
    message = str(caught.value)
    assert f"the LM server at {fake_server} does not serve model 'missing'" in message
    assert "'tiny'" in message and "set RAG_LLM__MODEL" in message


def test_openai_unreachable_names_the_url():
    with pytest.raises(RagError) as caught:
        list(OpenAILLM("http://127.0.0.1:9/v1", "m", timeout_s=2).stream([{"role": "user", "content": "q"}]))
    assert "the LM server at http://127.0.0.1:9/v1 is unreachable" in str(caught.value)
    assert "RAG_LLM__BASE_URL" in str(caught.value)


def test_openai_timeout_is_a_rag_error():
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        with pytest.raises(RagError) as caught:
            OpenAILLM(url, "m", timeout_s=0.5).generate([{"role": "user", "content": "q"}])
    assert f"the LM server at {url} did not answer within 0.5 s" in str(caught.value)
    assert "RAG_LLM__TIMEOUT_S" in str(caught.value)


def test_openai_stream_dropped_mid_answer_is_a_rag_error(fake_server):
    pieces = []
    with pytest.raises(RagError, match="dropped the connection mid-answer"):
        for piece in OpenAILLM(fake_server, "drop").stream([{"role": "user", "content": "q"}]):
            pieces.append(piece)
    assert "".join(pieces) == "Paris is"  # what came before the drop was streamed


def test_openai_reply_prefix_is_not_sent_and_its_echo_is_dropped(fake_server):
    messages = [{"role": "user", "content": "q"}]
    assert OpenAILLM(fake_server, "echo").generate(messages, prefix="Answer:") == "Paris [1]"
    assert _FakeOpenAI.requests[-1]["body"]["messages"] == messages  # no partial assistant turn
    assert OpenAILLM(fake_server, "tiny").generate(messages, prefix="Answer:") == "Paris is the capital [1]."


def test_factory_needs_a_url_for_openai(tmp_path):
    settings = Settings(home=tmp_path, **{"llm": {"mode": "openai", "model": "m"}})
    with pytest.raises(RagError, match="RAG_LLM__BASE_URL"):
        get_llm(settings)


def test_factory_builds_once_and_makes_no_network_call(tmp_path, fake_server):
    settings = Settings(home=tmp_path, **{"llm": {"mode": "openai", "model": "m", "base_url": fake_server}})
    assert get_llm(settings) is get_llm(settings)
    assert _FakeOpenAI.requests == []  # building the component calls nothing


def test_test_profile_gives_the_scripted_llm(test_settings):
    assert isinstance(get_llm(test_settings), ScriptedLLM)


def test_scripted_llm_calls_are_bounded():
    llm = ScriptedLLM(["ok"], max_calls=3)
    for i in range(10):
        llm.generate([{"role": "user", "content": str(i)}])
    assert isinstance(llm.calls, list)
    assert [c[0]["content"] for c in llm.calls] == ["7", "8", "9"]  # the most recent, oldest first


def test_the_factory_keys_on_the_llm_section_and_picks_the_class_by_mode(tmp_path):
    settings = Settings(home=tmp_path, **{"llm": {"mode": "scripted"}})
    llm = get_llm(settings)
    assert type(llm) is LLM_BACKENDS["scripted"] is ScriptedLLM
    assert get_llm(settings.with_overrides(**{"answer.quote": False})) is llm  # other sections do not matter
    other = get_llm(settings.with_overrides(**{"llm.context_tokens": 1024}))
    assert other is not llm and other.context_window == 1024
    assert set(LLM_BACKENDS) == {"transformers", "openai", "scripted"}


def test_the_local_backend_loads_offline_only_when_the_settings_say_so(tmp_path):
    cfg = Settings(home=tmp_path).llm
    assert TransformersLLM.from_settings(cfg, device="cpu", cache_dir=tmp_path, offline=True).offline is True
    assert TransformersLLM.from_settings(cfg, device="cpu", cache_dir=tmp_path, offline=False).offline is False


# -- the local backend, on a tiny random Llama saved under tmp_path ---------------------------------------------------
_VOCAB = VOCAB


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    """A 1-layer Llama with a word-level tokenizer and a chat template, as safetensors: loads in well under a second."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-llama"))


def _tiny(folder, tmp_path) -> TransformersLLM:
    return TransformersLLM(str(folder), tmp_path / "cache", device="cpu", dtype="float32", offline=True)


CHAT = [{"role": "system", "content": "the capital ."}, {"role": "user", "content": "what is the capital of France ?"}]


def test_loading_the_lm_leaves_autograd_on_for_the_thread(tiny_lm_dir, tmp_path):
    torch = pytest.importorskip("torch")
    llm = _tiny(tiny_lm_dir, tmp_path)
    for _ in llm.stream(CHAT, max_new_tokens=3, prefix="Answer:"):  # the caller's code between tokens has autograd
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    llm.generate(CHAT, max_new_tokens=3)  # again, through the cached prompt head
    # A demo trained afterwards in the same thread: one training step must work.
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = net(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimiser.step()
    assert net.weight.grad is not None and torch.is_grad_enabled()


def test_decode_lets_the_caller_pick_every_token(tiny_lm_dir, tmp_path):
    llm = _tiny(tiny_lm_dir, tmp_path)
    assert llm.exposes_logits
    paris = llm.tokenize("Paris")
    assert llm.token_strings(paris) == ["Paris"] and llm.stop_ids() == {1}
    seen = []

    def choose(logits, generated):
        seen.append((logits.shape, logits.dtype.name, list(generated)))
        return paris[0] if len(generated) < 2 else None

    assert "".join(llm.decode(CHAT, choose, max_new_tokens=5, prefix="Answer:")) == "Paris Paris"
    assert seen == [((len(_VOCAB),), "float32", []), ((len(_VOCAB),), "float32", paris),
                    ((len(_VOCAB),), "float32", paris * 2)]


def test_the_span_constraint_on_a_real_model_yields_an_evidence_span(tiny_lm_dir, tmp_path):
    llm = _tiny(tiny_lm_dir, tmp_path)
    evidence = ["the capital of France is Paris ."]
    span = "".join(stream_span(llm, CHAT, evidence, max_new_tokens=4, prefix="Answer:")).strip()
    assert span and span in evidence[0]


def test_continuations_score_like_a_full_forward_pass(tiny_lm_dir, tmp_path):
    torch = pytest.importorskip("torch")
    llm = _tiny(tiny_lm_dir, tmp_path)
    conts = [llm.tokenize("Paris"), llm.tokenize("the capital of France"), llm.tokenize("France .")]
    with llm.continuations(CHAT, prefix="Answer:") as run:
        scored = run.score(conts, llm.stop_ids())
        assert run.first_logprobs.shape == (len(_VOCAB),)
        # Scoring leaves the prompt's cache as it was: a second call (other order) gives the same figures.
        again = run.score(conts[::-1], llm.stop_ids())[::-1]
        for (lp, end), (lp2, end2) in zip(scored, again):
            assert lp2 == pytest.approx(lp, abs=1e-5) and end2 == pytest.approx(end, abs=1e-5)
    model, tokenizer = llm._load()
    prompt = tokenizer(llm.render(CHAT, "Answer:"), return_tensors="pt", add_special_tokens=False)["input_ids"]
    for cont, (token_lp, end_lp) in zip(conts, scored):
        with torch.inference_mode():
            full = torch.log_softmax(model(input_ids=torch.cat([prompt, torch.tensor([cont])], 1)).logits[0], -1)
        start = prompt.shape[1]
        expected = [float(full[start - 1 + t, tok]) for t, tok in enumerate(cont)]
        ends = [float(full[start + t, 1]) for t in range(len(cont))]  # "</s>" is the only stop token
        assert token_lp.shape == end_lp.shape == (len(cont),)
        assert token_lp == pytest.approx(expected, abs=1e-4) and end_lp == pytest.approx(ends, abs=1e-4)


def test_multi_token_passes_run_at_bucketed_lengths_and_answer_as_unpadded(tiny_lm_dir, tmp_path):
    """Prompts of every length reach the model padded to a few shapes (the CPU kernels keep state per shape, so
    distinct lengths grew a server's memory), and what comes out is what an unpadded greedy decode gives."""
    torch = pytest.importorskip("torch")
    from rag_app.components.llm import LENGTH_BUCKET

    llm = _tiny(tiny_lm_dir, tmp_path)
    model, tokenizer = llm._load()
    seen: list[int] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                           with_kwargs=True)
    words = ["the", "capital", "of", "France", "is", "Paris", "."]
    replies, references = [], []
    for n in range(1, 9):
        question = [CHAT[0], {"role": "user", "content": " ".join((words * 2)[:n]) + " ?"}]
        replies.append(llm.generate(question, max_new_tokens=4))
        hook.remove()
        prompt = tokenizer(llm.render(question), return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            ids = model.generate(prompt, max_new_tokens=4, do_sample=False, eos_token_id=sorted(llm.stop_ids()),
                                 pad_token_id=0)
        references.append(tokenizer.decode(ids[0, prompt.shape[1]:], skip_special_tokens=True))
        hook = model.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                               with_kwargs=True)
    hook.remove()
    assert [r.strip() for r in replies] == [r.strip() for r in references]
    prompt_passes = [n for n in seen if n > 1]
    assert prompt_passes and all(n % LENGTH_BUCKET == 0 for n in prompt_passes)
