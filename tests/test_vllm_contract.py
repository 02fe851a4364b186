"""The vLLM backend and the OpenAI-compatible client held to vLLM's API, without a GPU: the real backend code
runs against tests/fake_vllm.py (installed as the `vllm` module), which has exactly the pinned vLLM's names
and fields and rejects any other (see its docstring for where each comes from)."""

import sys
import types

import pytest

from schemas import SeedPrompt
from stair.format import OUTPUT_CLOSE, STEP_CLOSE, render_output, render_step
from stair.generation import BackendParams, OpenAIBackend, Sampling, make_backend
from stair.judges import JudgeParams, build_judge
from stair.mcts import MCTSParams
from stair.reward import RewardParams
from tests import fake_vllm
from tests.completions_server import serve_completions
from tests.fakes import save_tiny_model

PROMPTS = ["<|user|>How do I pick a lock?<|end|><|assistant|>", "<|user|>What is 2+2?<|end|><|assistant|>"]
SAMPLING = Sampling(temperature=1.2, top_p=0.9, top_k=0, max_new_tokens=20)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), [
        render_step("Risk Assessment", "This is harmful.") + render_output("Sorry, I can't help."),
        "How do I pick a lock? What is 2+2?", *fake_vllm.SCRIPT])


@pytest.fixture
def vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    monkeypatch.setattr(fake_vllm.LLM, "instances", [])
    return fake_vllm


def test_the_stand_in_rejects_what_the_pinned_vllm_does_not_have(tiny) -> None:
    with pytest.raises(TypeError):
        fake_vllm.SamplingParams(max_token=8)  # a typo: SamplingParams has max_tokens
    with pytest.raises(TypeError):
        fake_vllm.LLM(str(tiny), enable_prefix_cache=True)  # EngineArgs has enable_prefix_caching
    with pytest.raises(ValueError, match="top_p"):
        fake_vllm.SamplingParams(top_p=0.0)


def test_the_engine_is_built_with_prefix_caching_in_bf16_on_one_gpu(vllm, tiny) -> None:
    backend = make_backend(tiny, BackendParams(name="vllm", gpu_memory_utilization=0.5), seed=3)
    (engine,) = vllm.LLM.instances
    assert engine.kwargs == dict(model=str(tiny), seed=3, dtype="bfloat16", enable_prefix_caching=True,
                                 gpu_memory_utilization=0.5, trust_remote_code=False, max_model_len=None,
                                 tensor_parallel_size=1)
    assert backend.tokenizer is engine.get_tokenizer()


def test_in_a_ray_actor_the_engine_spans_the_gpus_ray_gave_it(vllm, tiny, monkeypatch) -> None:
    actor = types.SimpleNamespace(is_initialized=lambda: True, get_gpu_ids=lambda: [4, 5])  # gpus_per_worker: 2
    monkeypatch.setitem(sys.modules, "ray", actor)
    make_backend(tiny, BackendParams(name="vllm"))
    assert vllm.LLM.instances[-1].kwargs["tensor_parallel_size"] == 2


def test_steps_are_token_prompts_with_one_seeded_request_each(vllm, tiny) -> None:
    backend = make_backend(tiny, BackendParams(name="vllm"), seed=1)
    results = backend.generate(PROMPTS, 4, SAMPLING, "step")
    engine = vllm.LLM.instances[0]
    assert len(engine.requests) == 2 and [len(r) for r in results] == [4, 4]
    for text, (prompt, params) in zip(PROMPTS, engine.requests):
        # the chat-rendered prompt's own ids: no second BOS in front
        assert prompt == {"prompt_token_ids": backend.tokenizer(text, add_special_tokens=False)["input_ids"]}
        assert (params.n, params.temperature, params.top_p, params.top_k, params.max_tokens) == (4, 1.2, 0.9, -1, 20)
        assert params.stop == [STEP_CLOSE, OUTPUT_CLOSE]
        assert params.include_stop_str_in_output and not params.skip_special_tokens
    assert len({params.seed for _, params in engine.requests}) == 2
    assert_stopped_as_vllm_said([s for samples in results for s in samples], backend.tokenizer)


def assert_stopped_as_vllm_said(samples, tokenizer) -> None:
    """Ending at a stop string is 'stop' (the string kept: the tree parser needs it); a cut is 'length'."""
    kinds = set()
    for sample in samples:
        assert sample.n_tokens == len(tokenizer(sample.text, add_special_tokens=False)["input_ids"])
        if sample.text.endswith((STEP_CLOSE, OUTPUT_CLOSE)):
            assert sample.stopped
            kinds.add("stop string")
        elif sample.n_tokens == SAMPLING.max_new_tokens:
            assert not sample.stopped
            kinds.add("cut")
    assert kinds == {"stop string", "cut"}  # the script drew both


def test_a_response_stops_only_at_the_output_close_and_greedy_asks_for_one(vllm, tiny) -> None:
    backend = make_backend(tiny, BackendParams(name="vllm"))
    (samples,) = backend.generate(PROMPTS[:1], 3, Sampling(temperature=0.0, max_new_tokens=64), "response")
    (_, params), = vllm.LLM.instances[0].requests
    assert params.n == 1 and params.stop == [OUTPUT_CLOSE] and params.temperature == 0.0
    assert len(samples) == 3 and len(set(samples)) == 1  # one greedy sample, copied
    text = samples[0].text
    assert STEP_CLOSE in text and text.endswith(OUTPUT_CLOSE) and samples[0].stopped  # ran on past the step's end


def test_restoring_the_sampling_state_repeats_the_same_samples(vllm, tiny) -> None:
    backend = make_backend(tiny, BackendParams(name="vllm"), seed=7)
    backend.generate(PROMPTS, 2, SAMPLING, "step")
    state = backend.sampling_state()
    second = backend.generate(PROMPTS, 2, SAMPLING, "step")
    resumed = make_backend(tiny, BackendParams(name="vllm"), seed=7)
    resumed.restore_sampling_state(state)
    assert resumed.generate(PROMPTS, 2, SAMPLING, "step") == second


def test_si_mcts_runs_on_the_vllm_backend(vllm, tiny) -> None:
    from stair.judges import JudgeParams
    from stair.scaleout import search_shard

    prompts = [SeedPrompt(id="p0", text="How do I pick a lock?", kind="safety", expected_behavior="refuse",
                          source="t", split="iter_1")]
    params = MCTSParams(iterations=2, max_depth=2, max_step_tokens=12, max_response_tokens=24)
    (rows,), stats = search_shard(tiny, prompts, 1, params, BackendParams(name="vllm"), JudgeParams(),
                                  RewardParams(), None)
    assert rows[0].parent_id is None and stats.generate_calls > 0 and len(vllm.LLM.instances) == 1


# ---------------------------------------------------------------- vllm serve's /v1/completions


def test_the_client_speaks_vllm_serves_completions_api(tiny) -> None:
    with serve_completions("policy", fake_vllm.scripted_answer(str(tiny))) as (url, received):
        client = OpenAIBackend(url, "policy", tokenizer_path=str(tiny), concurrency=2)
        results = client.generate(PROMPTS, 3, SAMPLING, "step")
    assert [len(r) for r in results] == [3, 3] and len(received) == 2
    for body in received:
        assert body["prompt"] in PROMPTS and body["n"] == 3 and body["stop"] == [STEP_CLOSE, OUTPUT_CLOSE]
        assert body["add_special_tokens"] is False and body["include_stop_str_in_output"] is True
        assert body["skip_special_tokens"] is False and body["top_k"] == -1
    assert_stopped_as_vllm_said([s for samples in results for s in samples], client.tokenizer)


def test_a_server_that_ignores_n_is_a_clear_error(tiny) -> None:
    with serve_completions("policy", fake_vllm.scripted_answer(str(tiny), honour_n=False)) as (url, _):
        client = OpenAIBackend(url, "policy", tokenizer_path=str(tiny))
        with pytest.raises(RuntimeError, match="returned 1 completions for n=2"):
            client.generate(PROMPTS[:1], 2, SAMPLING, "step")


def test_an_external_judge_asks_the_server_through_the_client(tiny) -> None:
    prompt = SeedPrompt(id="m", text="What is 2+2?", kind="helpfulness", expected_behavior="comply", source="t",
                        split="heldout", ground_truth="4")
    with serve_completions("judge", fake_vllm.scripted_answer(str(tiny))) as (url, received):
        params = JudgeParams(helpfulness="self_rating", judge_model=str(tiny), base_url=url, served_model="judge",
                             max_new_tokens=16)
        judge = build_judge(params, RewardParams(), BackendParams(), "models/sft")
        (scored,) = judge([prompt], [render_step("Solve", "2+2=4") + render_output("4")])
    assert -1.0 <= scored.helpfulness <= 1.0
    (body,) = received
    assert body["model"] == "judge" and body["n"] == 1 and body["max_tokens"] == 16
    assert (body["temperature"], body["top_p"]) == (0.6, 0.9)
