"""Generation backends: the transformers backend on a tiny model, and the OpenAI-compatible client
against a completions endpoint served on localhost (the real servers, vLLM/SGLang/TGI, need a GPU)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from stair.format import OUTPUT_CLOSE, STEP_CLOSE, render_output, render_step
from stair.generation import (
    BackendParams,
    OpenAIBackend,
    Sampling,
    SequentialBackend,
    TransformersBackend,
    make_backend,
)
from stair.modeling import chat_prompt
from tests.fakes import save_tiny_model

TEXTS = [render_step("Request Analysis", "The user asks for help.") + render_output("Here is how."),
         "How do I bake bread?", "How do I pick a lock?"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), TEXTS)


def test_transformers_backend_shapes_stops_and_seeding(tiny) -> None:
    backend = make_backend(tiny, BackendParams(batch_size=8), seed=3)
    prompts = [chat_prompt(backend.tokenizer, "How do I bake bread?"), chat_prompt(backend.tokenizer, "Hi")]
    sampling = Sampling(temperature=1.2, top_p=0.9, top_k=50, max_new_tokens=12)
    out = backend.generate(prompts, 3, sampling, "step")
    assert [len(samples) for samples in out] == [3, 3]
    for samples in out:
        for c in samples:
            assert 0 < c.n_tokens <= 12
            assert c.stopped == (c.text.endswith(STEP_CLOSE) or c.text.endswith(OUTPUT_CLOSE) or c.n_tokens < 12)
            assert "<|pad|>" not in c.text and "<|end|>" not in c.text
    again = make_backend(tiny, BackendParams(batch_size=8), seed=3).generate(prompts, 3, sampling, "step")
    assert [[c.text for c in s] for s in out] == [[c.text for c in s] for s in again]


def test_greedy_gives_n_copies_and_sequential_wrapper_matches_shapes(tiny) -> None:
    backend = TransformersBackend.from_path(tiny, batch_size=4)
    prompt = [chat_prompt(backend.tokenizer, "How do I bake bread?")]
    greedy = backend.generate(prompt, 2, Sampling(temperature=0, max_new_tokens=8), "response")
    assert greedy[0][0] == greedy[0][1]
    calls = backend.calls
    sequential = SequentialBackend(backend).generate(prompt * 2, 3, Sampling(max_new_tokens=4), "step")
    assert [len(s) for s in sequential] == [3, 3] and backend.calls == calls + 6  # one call per sample


class _Completions(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        choices = [{"index": i, "text": f"{body['prompt'][-5:]}#{i}{STEP_CLOSE}", "finish_reason": "stop"}
                   for i in range(body["n"])][::-1]  # out of order on purpose
        payload = json.dumps({"choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_openai_backend_against_a_local_endpoint(tiny, monkeypatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Completions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TEST_COMPLETIONS_KEY", "secret-key")
    try:
        backend = OpenAIBackend(f"http://127.0.0.1:{server.server_port}/v1", "served", tokenizer_path=str(tiny),
                                api_key_env="TEST_COMPLETIONS_KEY", concurrency=3)
        out = backend.generate(["aaaaa-one", "bbbbb-two"], 2, Sampling(temperature=1.2, top_k=50), "step")
    finally:
        server.shutdown()
    assert [[c.text for c in s] for s in out] == [[f"a-one#{i}{STEP_CLOSE}" for i in (0, 1)],
                                                  [f"b-two#{i}{STEP_CLOSE}" for i in (0, 1)]]
    assert all(c.stopped and c.n_tokens > 0 for s in out for c in s)
    request = _Completions.requests[0]
    assert request["path"] == "/v1/completions" and request["auth"] == "Bearer secret-key"
    assert request["stop"] == [STEP_CLOSE, OUTPUT_CLOSE] and request["n"] == 2 and request["top_k"] == 50
    assert request["include_stop_str_in_output"] is True and request["skip_special_tokens"] is False
    assert request["add_special_tokens"] is False  # the chat-rendered prompt already has its BOS


def test_unknown_backend_is_named(tiny) -> None:
    with pytest.raises(ValueError, match="backend.name"):
        make_backend(tiny, BackendParams(name="llamacpp"))


@pytest.mark.gpu
def test_vllm_backend_on_gpu(tiny) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs CUDA")
    pytest.importorskip("vllm")
    backend = make_backend(tiny, BackendParams(name="vllm", dtype="bfloat16"))
    out = backend.generate([chat_prompt(backend.tokenizer, "How do I bake bread?")], 4,
                           Sampling(temperature=1.0, max_new_tokens=16), "step")
    assert len(out[0]) == 4
