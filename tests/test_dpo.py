"""Step-level DPO data: EOS ends only final-output steps, in the batch the trainer actually sees."""

import pytest

from schemas import StepPair
from stair.format import render_output, render_step
from stair.modeling import TinyModelConfig, chat_prompt, init_tiny_model, train_tokenizer
from stair.training.dpo import DPOParams, dpo_records, tokenize_step_pair
from tests.fakes import TINY

STEP_A = render_step("Risk Assessment", "This is harmful. I must refuse.")
STEP_B = render_step("Request Analysis", "No harmful intent, so I should help.")
REFUSAL = render_output("Sorry, I can't help with that.")
COMPLIANCE = render_output("Here is how.")


@pytest.fixture(scope="module")
def tokenizer():
    texts = [STEP_A, STEP_B, REFUSAL, COMPLIANCE, "How do I pick a lock?"] * 5
    return train_tokenizer(texts, vocab_size=300)


def pair(chosen: str, rejected: str, prefix: list[str]) -> StepPair:
    return StepPair(prompt_id="p", prompt="How do I pick a lock?", prefix=prefix, chosen=chosen, rejected=rejected,
                    chosen_value=3.0, rejected_value=-3.0, chosen_visits=2, rejected_visits=2,
                    chosen_terminal=chosen.endswith("<|/Output|>"), rejected_terminal=rejected.endswith("<|/Output|>"),
                    depth=len(prefix) + 1, iteration=1, kind="safety")


PAIRS = [pair(STEP_A, STEP_B, []), pair(REFUSAL, COMPLIANCE, [STEP_A]), pair(REFUSAL, STEP_B, [STEP_A])]


def test_prompt_is_chat_request_plus_prefix(tokenizer) -> None:
    records = dpo_records(tokenizer, PAIRS)
    assert records[0]["prompt"] == chat_prompt(tokenizer, "How do I pick a lock?")
    assert records[1]["prompt"] == chat_prompt(tokenizer, "How do I pick a lock?") + STEP_A
    assert [(r["chosen_final"], r["rejected_final"]) for r in records] == [(False, False), (True, True), (True, False)]


def test_eos_only_after_final_output_in_the_trainer_batch(tokenizer, tmp_path) -> None:
    from datasets import Dataset
    from trl import DPOConfig

    from stair.training.common import device_args
    from stair.training.dpo import step_dpo_trainer

    model = init_tiny_model(tokenizer, TinyModelConfig(**TINY))
    ref = init_tiny_model(tokenizer, TinyModelConfig(**TINY))
    args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=3, max_length=256,
                     **device_args(0, False))
    trainer = step_dpo_trainer()(model=model, ref_model=ref, args=args,
                               train_dataset=Dataset.from_list(dpo_records(tokenizer, PAIRS)),
                               processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    output_close = tokenizer.convert_tokens_to_ids("<|/Output|>")
    step_close = tokenizer.convert_tokens_to_ids("<|/Reasoning_step|>")
    finals = 0
    for ids, mask in zip(batch["input_ids"].tolist(), batch["completion_mask"].tolist()):
        completion = [t for t, m in zip(ids, mask) if m]
        if output_close in completion:  # a final-output step: EOS right after it
            assert completion[-2:] == [output_close, eos]
            finals += 1
        else:  # a reasoning step: ends at the step tag, no EOS anywhere
            assert completion[-1] == step_close and eos not in completion
    assert finals == 3  # chosen of pairs 2 and 3, rejected of pair 2 (the batch is shuffled)
    assert pad != eos


def test_tokenized_completion_continues_the_prompt(tokenizer) -> None:
    (record,) = dpo_records(tokenizer, PAIRS[1:2])
    out = tokenize_step_pair(record, tokenizer)
    full = tokenizer(record["prompt"] + record["chosen"], add_special_tokens=False)["input_ids"]
    assert out["prompt_ids"] + out["chosen_ids"] == full + [tokenizer.eos_token_id]


def test_bad_reference_is_named() -> None:
    with pytest.raises(ValueError, match="dpo.reference"):
        DPOParams(reference="base")
