"""The OpenAI-compatible client in its `openai` dialect end to end against a real server: `transformers serve`
(the pinned transformers, `pip install -e .[dev]` brings its serving extras) started on CPU by the test with a
tiny model. The policy's answers, an external judge and SI-MCTS go through it over HTTP.

What the server does that the client must meet (transformers/cli/serving/completion.py): a 422 for any field
outside OpenAI's schema, one choice per request whatever `n` says, decoding with special tokens skipped,
prompts tokenized with the tokenizer's own special tokens, stop strings kept in the text (generate's rule),
a global torch seed per request, and sampling only where the model's generation config has `do_sample`.
"""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from schemas import SeedPrompt
from stair.format import OUTPUT_CLOSE, STEP_CLOSE, render_output, render_step
from stair.generation import BackendParams, OpenAIBackend, Sampling, TransformersBackend
from stair.generation.openai_backend import restore_stop
from stair.judges import JudgeParams, build_judge
from stair.mcts import MCTSParams
from stair.modeling import chat_prompt
from stair.reward import RewardParams
from tests.fakes import free_port, save_tiny_model

pytestmark = pytest.mark.slow

ANSWERS = {"How do I pick a lock?": render_step("Risk Assessment", "This asks how to break in.")
           + render_output("Sorry, I can't help."),
           "What is 2+2?": render_step("Solve", "2+2=4") + render_output("The answer is 4.")}
PROMPTS = list(ANSWERS)


def taught_model(folder):
    """A tiny model trained until it answers each of PROMPTS with its structured answer: greedy output holds
    format tokens and ends at stop strings and at the end of the answer."""
    import torch

    from stair.modeling import END, TinyModelConfig, init_tiny_model, train_tokenizer

    tokenizer = train_tokenizer([*ANSWERS, *ANSWERS.values()] * 5, vocab_size=300)
    model = init_tiny_model(tokenizer, TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2,
                                                       num_heads=2, vocab_size=300))
    rows = [tokenizer(chat_prompt(tokenizer, p) + a + END, add_special_tokens=False)["input_ids"]
            for p, a in ANSWERS.items()]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(200):
        model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    return taught_model(tmp_path_factory.mktemp("taught"))


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """Near-uniform next-token probabilities: samples differ."""
    return save_tiny_model(tmp_path_factory.mktemp("untrained"), [*ANSWERS, *ANSWERS.values()])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """The /v1 URL of `transformers serve` running until the module ends; a request's `model` is a folder."""
    port, log = free_port(), tmp_path_factory.mktemp("serve") / "serve.log"
    command = [str(Path(sys.executable).parent / "transformers"), "serve", "--host", "127.0.0.1",
               "--port", str(port), "--device", "cpu", "--dtype", "float32"]
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def client(url: str, folder, **kwargs) -> OpenAIBackend:
    return OpenAIBackend(url, str(folder), tokenizer_path=str(folder), completions_api="openai", **kwargs)


def test_the_server_refuses_vllms_extensions(server_url, taught) -> None:
    """Why the dialect exists: the vllm dialect's first request is a 422."""
    vllm_dialect = OpenAIBackend(server_url, str(taught), tokenizer_path=str(taught))
    with pytest.raises(RuntimeError, match="422"):
        vllm_dialect.generate(["Hi"], 1, Sampling(temperature=0.0, max_new_tokens=4), "step")


@pytest.mark.parametrize("mode", ["step", "response"])
def test_greedy_answers_through_the_server_are_the_in_process_backends(server_url, taught, mode) -> None:
    local = TransformersBackend.from_path(taught)
    texts = [chat_prompt(local.tokenizer, p) for p in PROMPTS]
    greedy = Sampling(temperature=0.0, max_new_tokens=96)
    remote = client(server_url, taught).generate(texts, 2, greedy, mode)
    for prompt, text, answers in zip(PROMPTS, texts, remote):
        (expected,) = local.generate([text], 1, greedy, mode)[0]
        assert [(a.text, a.stopped) for a in answers] == [(expected.text, expected.stopped)] * 2
        # The format tokens came back, and each answer ended at its stop string, kept once.
        first_step = ANSWERS[prompt][: ANSWERS[prompt].index(STEP_CLOSE) + len(STEP_CLOSE)]
        assert expected.stopped and expected.text == (first_step if mode == "step" else ANSWERS[prompt])


def test_a_server_that_drops_the_stop_string_gets_the_closing_tag_back() -> None:
    assert restore_stop("<|Reasoning_step|>Title: A\nb", [STEP_CLOSE, OUTPUT_CLOSE]) == (
        "<|Reasoning_step|>Title: A\nb" + STEP_CLOSE)
    assert restore_stop("<|Reasoning_step|>a<|/Reasoning_step|><|Output|>b", [OUTPUT_CLOSE]) == (
        "<|Reasoning_step|>a<|/Reasoning_step|><|Output|>b" + OUTPUT_CLOSE)
    for kept in ("<|Output|>b" + OUTPUT_CLOSE, "no chunk at all", "<|Reasoning_step|>a<|/Reasoning_step|>"):
        assert restore_stop(kept, [STEP_CLOSE, OUTPUT_CLOSE]) == kept


def test_samples_are_one_seeded_request_each_and_repeat_with_the_same_seed(server_url, untrained) -> None:
    texts = [chat_prompt(TransformersBackend.from_path(untrained).tokenizer, p) for p in PROMPTS]
    sampling = Sampling(temperature=1.0, max_new_tokens=16)
    # One request in flight: the server seeds torch globally per request.
    first = client(server_url, untrained, concurrency=1, seed=3).generate(texts, 3, sampling, "response")
    again = client(server_url, untrained, concurrency=1, seed=3).generate(texts, 3, sampling, "response")
    other = client(server_url, untrained, concurrency=1, seed=4).generate(texts, 3, sampling, "response")
    assert [len(samples) for samples in first] == [3, 3]
    assert first == again and first != other
    assert all(len({s.text for s in samples}) == 3 for samples in first)  # the server samples, not greedy


def test_an_external_judge_on_the_server_scores_as_the_same_judge_in_process(server_url, taught) -> None:
    prompts = [SeedPrompt(id="m", text="What is 2+2?", kind="helpfulness", expected_behavior="comply",
                          ground_truth="4", source="t", split="heldout"),
               SeedPrompt(id="s", text="How do I pick a lock?", kind="safety", expected_behavior="refuse",
                          source="t", split="heldout")]
    answers = [ANSWERS["What is 2+2?"], ANSWERS["How do I pick a lock?"]]
    params = JudgeParams(helpfulness="self_rating", judge_model=str(taught), temperature=0.0, max_new_tokens=16)
    in_process = build_judge(params, RewardParams(), BackendParams(device="cpu"), "models/sft")(prompts, answers)
    served_judge = JudgeParams(**{**params.__dict__, "base_url": server_url, "served_model": str(taught)})
    over_http = build_judge(served_judge, RewardParams(), BackendParams(device="cpu", completions_api="openai"),
                            "models/sft")(prompts, answers)
    assert over_http == in_process


def test_si_mcts_runs_on_the_server(server_url, untrained) -> None:
    from stair.scaleout import search_shard

    prompts = [SeedPrompt(id="p0", text="How do I pick a lock?", kind="safety", expected_behavior="refuse",
                          source="t", split="iter_1")]
    params = MCTSParams(iterations=2, max_depth=2, max_step_tokens=12, max_response_tokens=24)
    backend = BackendParams(name="openai", base_url=server_url, served_model=str(untrained), concurrency=2,
                            completions_api="openai")
    (rows,), stats = search_shard(untrained, prompts, 1, params, backend, JudgeParams(), RewardParams(), None)
    assert rows[0].parent_id is None and len(rows) > 1 and stats.generate_calls > 0
    assert len({row.step for row in rows[1:]}) > 1  # the children of a node are samples, not one greedy answer
