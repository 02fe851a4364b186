"""Generation backends: the transformers backend on a tiny model, and the OpenAI-compatible client
against a completions endpoint served on localhost (the real servers, vLLM/SGLang/TGI, need a GPU)."""

import json

import pytest

from stair.format import OUTPUT_CLOSE, STEP_CLOSE, render_output, render_step
from stair.generation import (
    BackendParams,
    OpenAIBackend,
    Sampling,
    SequentialBackend,
    TransformersBackend,
    make_backend,
    sample_tokens,
)
from stair.modeling import chat_prompt
from tests.completions_server import serve_completions
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


def test_sampling_filters_then_inverts_the_cdf_at_each_rows_draw() -> None:
    import torch

    # Probabilities 0.4, 0.3, 0.2, 0.1 (temperature 1): top-p 0.6 keeps 0.4 and 0.3 (renormalised to 4/7, 3/7).
    logits = torch.log(torch.tensor([[0.1, 0.4, 0.2, 0.3]] * 3))
    assert sample_tokens(logits, Sampling(1.0, top_p=0.6), [0.0, 0.56, 0.58]) == [1, 1, 3]
    # Top-k 3 drops 0.1; no top-p: draws over 0.4, 0.3, 0.2 (cdf 4/9, 7/9, 1).
    assert sample_tokens(logits, Sampling(1.0, top_k=3), [0.43, 0.45, 0.99]) == [1, 3, 2]
    assert sample_tokens(logits, Sampling(0.0), [0.9, 0.9, 0.9]) == [1, 1, 1]


def _prompts(backend) -> list[str]:
    return [chat_prompt(backend.tokenizer, text) for text in ("How do I bake bread?", "Hi", "How do I pick a lock?")]


def test_a_requests_samples_do_not_depend_on_the_batch_it_runs_in(tiny) -> None:
    sampling = Sampling(temperature=1.2, top_p=0.9, top_k=50, max_new_tokens=16)
    wide = TransformersBackend.from_path(tiny, batch_size=64, seed=5)
    prompts = _prompts(wide)
    out = wide.generate(prompts, 3, sampling, "step", keys=["a", "b", "c"])
    # One sample at a time, prompts in another order and without a prefix cache: the same samples by key.
    narrow = TransformersBackend.from_path(tiny, batch_size=1, seed=5, prefix_cache_bytes=0)
    alone = narrow.generate(prompts[::-1], 3, sampling, "step", keys=["c", "b", "a"])[::-1]
    assert [[c.text for c in s] for s in out] == [[c.text for c in s] for s in alone]
    assert len({c.text for s in out for c in s}) > 3  # samples differ across prompts and within one
    assert narrow.calls == wide.calls == 0  # keyed calls leave the call count (the sampling state) alone
    other = TransformersBackend.from_path(tiny, batch_size=64, seed=6).generate(prompts, 3, sampling, "step",
                                                                               keys=["a", "b", "c"])
    assert [[c.text for c in s] for s in other] != [[c.text for c in s] for s in out]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])  # bfloat16: the dtype of a GPU run, here on CPU
def test_greedy_decoding_matches_model_generate(tiny, dtype) -> None:
    backend = TransformersBackend.from_path(tiny, batch_size=2, dtype=dtype)
    prompts = _prompts(backend)
    out = backend.generate(prompts, 1, Sampling(temperature=0, max_new_tokens=10), "response")
    for prompt, (completion,) in zip(prompts, out):
        batch = backend.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
        ids = backend.model.generate(**batch, do_sample=False, max_new_tokens=10, pad_token_id=0,
                                     eos_token_id=sorted(backend._stop_ids["response"]))[0, batch["input_ids"].shape[1]:]
        assert completion.text == backend._decode(ids.tolist()) and completion.n_tokens == len(ids)


def test_the_engine_samples_in_bfloat16(tiny) -> None:
    """The dtype a GPU run uses (backend.dtype bfloat16), here on CPU: sampled rows are well-formed and repeat
    with the seed (greedy decoding in bf16 is checked against `generate` above)."""
    import torch

    backend = TransformersBackend.from_path(tiny, batch_size=4, dtype="bfloat16", seed=1)
    assert backend.model.dtype == torch.bfloat16
    prompts = _prompts(backend)
    sampling = Sampling(temperature=1.2, top_p=0.9, max_new_tokens=12)
    sampled = backend.generate(prompts, 3, sampling, "step", keys=["a", "b", "c"])
    again = TransformersBackend.from_path(tiny, batch_size=4, dtype="bfloat16", seed=1).generate(
        prompts, 3, sampling, "step", keys=["a", "b", "c"])
    assert sampled == again and all(0 < c.n_tokens <= 12 for s in sampled for c in s)


def test_finished_rows_leave_the_batch_and_waiting_ones_join(tiny) -> None:
    backend = TransformersBackend.from_path(tiny, batch_size=4, seed=2)
    decode_rows: list[int] = []  # rows of every decoding step
    joins: list[int] = []  # samples joining, per prompt pass
    forward, prefill = backend._forward, backend._prefill

    def joining(prompt_ids, counts):
        joins.append(sum(counts))
        backend._forward = forward
        try:
            return prefill(prompt_ids, counts)
        finally:
            backend._forward = stepping

    def stepping(input_ids, *args):
        decode_rows.append(input_ids.shape[0])
        return forward(input_ids, *args)

    backend._forward, backend._prefill = stepping, joining
    prompts = _prompts(backend)
    out = backend.generate(prompts, 3, Sampling(temperature=1.5, max_new_tokens=12), "step", keys=["a", "b", "c"])
    assert all(len(s) == 3 for s in out) and len({c.n_tokens for s in out for c in s}) > 1
    assert max(decode_rows) <= 4 and joins[0] == 4 and len(joins) > 1 and sum(joins) == 9  # later joiners
    # Rows decoded for finished samples (a free slot waits for a joiner, or for a quarter to be free):
    wasted = sum(decode_rows) - sum(c.n_tokens - 1 for s in out for c in s)
    assert 0 <= wasted <= sum(decode_rows) // 4


def test_samples_of_a_prompt_share_its_pass_and_later_prompts_its_cache(tiny) -> None:
    backend = TransformersBackend.from_path(tiny, batch_size=16, seed=2)
    passes: list[tuple[int, int]] = []
    forward = backend._forward

    def counting(input_ids, *args):
        passes.append(tuple(input_ids.shape))
        return forward(input_ids, *args)

    backend._forward = counting
    (prompt,) = _prompts(backend)[:1]
    sampling = Sampling(temperature=1.2, max_new_tokens=8)
    (first,) = backend.generate([prompt], 4, sampling, "step", keys=["node"])
    assert passes[0] == (1, backend.count_tokens([prompt])[0])  # one pass over the prompt for 4 samples
    passes.clear()
    longer = [prompt + c.text for c in first[:2]]
    out = backend.generate(longer, 2, sampling, "response", keys=["x", "y"])
    # Only what follows the cached prompt runs (the longest new part, the rest left-padded).
    assert passes[0] == (2, max(backend.count_tokens(longer)) - backend.count_tokens([prompt])[0])
    uncached = TransformersBackend.from_path(tiny, batch_size=16, seed=2, prefix_cache_bytes=0)
    assert [[c.text for c in s] for s in uncached.generate(longer, 2, sampling, "response", keys=["x", "y"])] == \
        [[c.text for c in s] for s in out]
    backend.generate(longer, 1, sampling, "response")  # a call without keys starts from an empty cache
    assert len(backend.prefixes.entries) == 2


def test_a_model_with_sliding_window_layers_is_refused_by_name() -> None:
    from transformers import MistralConfig

    from stair.generation.kv_cache import appending_cache

    with pytest.raises(ValueError, match="full-attention models only; mistral has DynamicSlidingWindowLayer"):
        appending_cache(MistralConfig(num_hidden_layers=1, sliding_window=16))


def echoed_choices(body: dict) -> list[dict]:
    """n choices echoing the prompt's last characters, out of order on purpose."""
    return [{"index": i, "text": f"{body['prompt'][-5:]}#{i}{STEP_CLOSE}", "finish_reason": "stop"}
            for i in range(body["n"])][::-1]


def test_openai_backend_against_a_local_endpoint(tiny, monkeypatch) -> None:
    monkeypatch.setenv("TEST_COMPLETIONS_KEY", "secret-key")
    with serve_completions("served", echoed_choices, api_key="secret-key") as (url, received):
        backend = OpenAIBackend(url, "served", tokenizer_path=str(tiny), api_key_env="TEST_COMPLETIONS_KEY",
                                concurrency=3)
        out = backend.generate(["aaaaa-one", "bbbbb-two"], 2, Sampling(temperature=1.2, top_k=50), "step")
        monkeypatch.delenv("TEST_COMPLETIONS_KEY")
        keyless = OpenAIBackend(url, "served", tokenizer_path=str(tiny), api_key_env="TEST_COMPLETIONS_KEY")
        with pytest.raises(RuntimeError, match="answered 401"):  # the key reaches the server as a bearer token
            keyless.generate(["aaaaa-one"], 1, Sampling(), "step")
    assert [[c.text for c in s] for s in out] == [[f"a-one#{i}{STEP_CLOSE}" for i in (0, 1)],
                                                  [f"b-two#{i}{STEP_CLOSE}" for i in (0, 1)]]
    assert all(c.stopped and c.n_tokens > 0 for s in out for c in s)
    request = received[0]  # the server answered it: the route, fields and model name are vLLM's
    assert request["stop"] == [STEP_CLOSE, OUTPUT_CLOSE] and request["n"] == 2 and request["top_k"] == 50
    assert request["include_stop_str_in_output"] is True and request["skip_special_tokens"] is False
    assert request["add_special_tokens"] is False  # the chat-rendered prompt already has its BOS


def test_the_test_server_refuses_what_vllm_serve_does_not_take(tiny) -> None:
    """The check every served test leans on: a foreign field, another model, another route are answered 400."""
    import urllib.error
    import urllib.request

    good = {"model": "served", "prompt": "x", "n": 1}
    with serve_completions("served", echoed_choices) as (url, _):
        for path, body, named in [("/completions", {**good, "max_token": 8}, "max_token"),
                                  ("/completions", {**good, "model": "other"}, "other"),
                                  ("/chat/completions", good, "/v1/chat/completions")]:
            request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 400 and named in json.loads(refused.value.read())["message"]
        with pytest.raises(RuntimeError, match="answered 400"):  # and the client says so
            OpenAIBackend(url, "other", tokenizer_path=str(tiny)).generate(["x"], 1, Sampling(), "step")


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
