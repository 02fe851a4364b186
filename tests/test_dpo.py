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


@pytest.mark.parametrize("field, value", [("reference", "base"), ("loss_type", "sigmod"), ("beta", 0.0),
                                          ("beta", float("nan")), ("sft_weight", -1.0)])
def test_bad_params_name_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"dpo.{field}="):
        DPOParams(**{field: value})


def test_every_loss_type_allowed_is_one_trl_computes() -> None:
    from trl import DPOConfig

    from stair.training.dpo import LOSS_TYPES

    documented = DPOConfig.__doc__.split("loss_type (")[1].split("loss_weights (")[0]
    assert all(f"'{loss}'" in documented for loss in LOSS_TYPES)


@pytest.mark.parametrize("lora_r, precompute, same, explicit", [
    (0, False, True, True),  # full training: always explicit, so TRL never reloads the policy by name
    (0, False, False, True),
    (0, True, True, False),  # precompute from the untrained policy: that is the reference
    (0, True, False, True),
    (4, False, True, False),  # LoRA: the adapter-free policy is the reference
    (4, False, False, True),
    (4, True, False, True),
])
def test_a_reference_other_than_the_policy_is_always_loaded(tmp_path, lora_r, precompute, same, explicit) -> None:
    from stair.training.common import LoraParams
    from stair.training.dpo import explicit_reference

    params = DPOParams(lora=LoraParams(r=lora_r), precompute_ref_log_probs=precompute, reference="sft")
    policy = tmp_path / "models/dpo/1"
    reference = policy if same else tmp_path / "models/sft"
    assert explicit_reference(policy, reference, params) == (reference if explicit else None)


def _initial_rewards(trainer) -> tuple[float, float]:
    """rewards/chosen and rewards/rejected of the one batch, before any update: beta x (policy - reference) logps."""
    import torch

    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        trainer.compute_loss(trainer.model, batch)
    metrics = trainer._metrics["train" if trainer.model.training else "eval"]
    return metrics["rewards/chosen"][-1], metrics["rewards/rejected"][-1]


def test_trl_honours_an_explicit_reference_with_lora_and_with_precomputed_log_probs(tokenizer) -> None:
    """dpo.reference: sft from iteration 2 on: the SFT model's log-probs, not the policy's, in every setup."""
    from stair.training.common import LoraParams
    from stair.training.dpo import build_step_dpo_trainer

    def rewards(lora_r: int, precompute: bool, with_reference: bool) -> tuple[float, float]:
        policy = init_tiny_model(tokenizer, TinyModelConfig(**TINY, seed=0))
        sft = init_tiny_model(tokenizer, TinyModelConfig(**TINY, seed=1)) if with_reference else None
        params = DPOParams(batch_size=len(PAIRS), max_length=256, precompute_ref_log_probs=precompute,
                           lora=LoraParams(r=lora_r, dropout=0.0))
        return _initial_rewards(build_step_dpo_trainer(policy, sft, tokenizer, PAIRS, params))

    against_sft = rewards(0, False, True)  # full training with an explicit reference: the baseline
    assert abs(against_sft[0]) > 1e-3  # the two models differ, so the rewards are not zero
    for lora_r, precompute in [(0, True), (4, False), (4, True)]:
        assert rewards(lora_r, precompute, True) == pytest.approx(against_sft, abs=1e-5), (lora_r, precompute)
    # Without the explicit model TRL's reference is the policy itself: rewards start at zero.
    assert rewards(4, False, False) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert rewards(0, True, False) == pytest.approx((0.0, 0.0), abs=1e-6)


def test_the_sft_term_keeps_chosen_steps_likely(tokenizer, tmp_path) -> None:
    """With sft_weight the chosen steps end more likely than plain DPO leaves them (RPO); 0 is plain DPO."""
    from stair.training.dpo import train_step_dpo

    policy = tmp_path / "policy"
    init_tiny_model(tokenizer, TinyModelConfig(**TINY)).save_pretrained(policy)
    tokenizer.save_pretrained(policy)

    def chosen_reward(sft_weight: float) -> float:
        params = DPOParams(sft_weight=sft_weight, learning_rate=1e-2, epochs=10.0, batch_size=len(PAIRS),
                           max_length=256, logging_steps=1)
        return train_step_dpo(policy, policy, PAIRS, tmp_path / f"out_{sft_weight}", params)["chosen_reward"]

    assert chosen_reward(1.0) > chosen_reward(0.0) + 0.05
