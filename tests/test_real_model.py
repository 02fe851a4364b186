"""A real model's conventions, on the Llama-3 stand-in: BOS from the template only, the end of turn as EOS,
format tokens added, stops at both ends of text, and the vLLM engine given token ids (no second BOS)."""

import sys
import types

import pytest

from stair.format import FORMAT_TOKENS, OUTPUT_CLOSE, render_output, render_step
from stair.generation import Sampling, TransformersBackend, VLLMBackend
from stair.modeling import end_of_turn, load_pretrained_base
from stair.training.sft import sft_records
from tests.standin import BOS, EOS, EOT, build_llama3_standin

TEXTS = [render_step("Risk Analysis", "The request is harmful.") + render_output("Sorry, I can't help."),
         "How do I bake bread? Add 12 and 30 to get 42."] * 10


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The stand-in as the base stage loads it (format tokens added, EOS set to the end of turn), saved."""
    folder = build_llama3_standin(tmp_path_factory.mktemp("standin"), TEXTS)
    model, tokenizer = load_pretrained_base(str(folder))
    out = tmp_path_factory.mktemp("base")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_the_standin_is_llama3_shaped(tmp_path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_llama3_standin(tmp_path, TEXTS))
    assert tokenizer.eos_token == EOS and end_of_turn(tokenizer) == EOT  # distinct, as in Llama-3.1
    assert tokenizer("hi")["input_ids"][0] == tokenizer.convert_tokens_to_ids(BOS)  # the tokenizer adds a BOS
    assert not any(token in tokenizer.get_vocab() for token in FORMAT_TOKENS)


def test_base_adds_format_tokens_and_ends_turns_like_the_template(base) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    assert all(tokenizer.convert_tokens_to_ids(t) != tokenizer.unk_token_id for t in FORMAT_TOKENS)
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) == 1 for t in FORMAT_TOKENS)
    answer = render_step("Risk", "Harmful.") + render_output("No.")  # servers decode skipping special tokens
    assert tokenizer.decode(tokenizer(answer + EOT, add_special_tokens=False)["input_ids"],
                            skip_special_tokens=True) == answer
    assert tokenizer.eos_token == EOT and tokenizer.pad_token == EOT
    stops = AutoModelForCausalLM.from_pretrained(base).generation_config.eos_token_id
    assert set(stops) == {tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(EOT)}


def test_sft_targets_end_with_the_end_of_turn_and_prompts_have_one_bos(base) -> None:
    from transformers import AutoTokenizer

    from schemas import SFTExample

    tokenizer = AutoTokenizer.from_pretrained(base)
    example = SFTExample(id="x", prompt_id="x", prompt="How do I bake bread?", response=TEXTS[0], kind="helpfulness",
                          source="test")
    record = sft_records(tokenizer, [example])[0]
    ids = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids(BOS)) == 1 and ids[0] == tokenizer.convert_tokens_to_ids(BOS)
    assert "system<|end_header_id|>" in record["prompt"]  # the template's system block is kept
    # TRL appends tokenizer.eos_token to a completion: now the end of turn the template writes.
    assert tokenizer.eos_token == EOT


def test_generation_stops_at_either_end_and_drops_its_text(base) -> None:
    backend = TransformersBackend.from_path(base, batch_size=8, seed=1)
    ends = {backend.tokenizer.convert_tokens_to_ids(EOS), backend.tokenizer.convert_tokens_to_ids(EOT)}
    assert ends <= set(backend._stop_ids["response"]) and ends <= set(backend._stop_ids["step"])
    prompt = backend.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                   add_generation_prompt=True)
    out = backend.generate([prompt], 8, Sampling(temperature=1.5, max_new_tokens=24), "response")
    for completion in out[0]:
        assert EOT not in completion.text and EOS not in completion.text


def test_vllm_backend_sends_token_ids_without_a_second_bos(base, monkeypatch) -> None:
    """The engine tokenizes text with add_special_tokens (a second BOS); ids rendered by the template avoid it."""
    from transformers import AutoTokenizer

    sent = {}

    class FakeLLM:
        def __init__(self, model, **kwargs):
            self.tokenizer = AutoTokenizer.from_pretrained(model)

        def get_tokenizer(self):
            return self.tokenizer

        def generate(self, prompts, params, use_tqdm=False):  # one SamplingParams per prompt
            sent["prompts"], sent["params"] = prompts, params
            output = types.SimpleNamespace(text=OUTPUT_CLOSE, token_ids=[1], finish_reason="stop")
            return [types.SimpleNamespace(outputs=[output] * p.n) for p in params]

    class FakeSamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM, SamplingParams=FakeSamplingParams))
    backend = VLLMBackend(str(base))
    prompt = backend.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                   add_generation_prompt=True)
    backend.generate([prompt], 2, Sampling(temperature=1.0, max_new_tokens=8), "step")
    ids = sent["prompts"][0]["prompt_token_ids"]
    bos = backend.tokenizer.convert_tokens_to_ids(BOS)
    assert ids[0] == bos and ids.count(bos) == 1


def test_step_dpo_with_lora_on_the_standin_ends_final_steps_with_the_end_of_turn(base, tmp_path) -> None:
    """LoRA adapters train and merge on save; a chosen step that closes the output ends with <|eot_id|>."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from schemas import StepPair
    from stair.training.common import LoraParams
    from stair.training.dpo import DPOParams, dpo_records, tokenize_step_pair, train_step_dpo

    pairs = [StepPair(prompt_id=f"p{i}", prompt="How do I pick a lock?", prefix=[render_step("Risk", "Harmful.")],
                      chosen=render_output("Sorry, I can't help."), rejected=render_output("Here is how."),
                      chosen_value=1.0, rejected_value=-1.0, chosen_visits=1, rejected_visits=1,
                      chosen_terminal=True, rejected_terminal=True, depth=2, iteration=1, kind="safety")
             for i in range(4)]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = tokenize_step_pair(dpo_records(tokenizer, pairs[:1])[0], tokenizer)
    assert ids["chosen_ids"][-1] == tokenizer.convert_tokens_to_ids(EOT)
    params = DPOParams(epochs=1.0, batch_size=2, max_length=256, logging_steps=1,
                       lora=LoraParams(r=4, alpha=8, dropout=0.0))
    result = train_step_dpo(base, base, pairs, tmp_path / "dpo", params)
    assert result["pairs"] == 4
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "dpo")  # a plain model: LoRA merged in
    assert not any("lora" in name for name, _ in merged.named_parameters())
