"""Training in several processes (stair.launch): the stage re-runs itself under accelerate launch.

The slow tests run sft, dpo and prm with 2 processes on CPU (strategy ddp, gloo) on a micro configuration
and check them against 1 process over the same global batch: the first steps' losses agree, and the one
saved model loads and holds the same weights.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification

from schemas import PRMExample, SFTExample, StepPair
from stair.config import ParamsError
from stair.format import render_output, render_step
from stair.launch import (
    STRATEGIES,
    WORKER_ENV,
    DistributedParams,
    LaunchError,
    check_strategy,
    in_processes,
    launch_command,
    per_process_batch,
)
from stair.store import write_artifact
from tests.fakes import free_port, save_tiny_model
from tests.project import merge, stage_argv

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs/accelerate"
# Two runs over the same data, seed and global batch differ only in float summation order.
LOSS_TOLERANCE = 1e-4
WEIGHT_TOLERANCE = 1e-4
STEP_A = render_step("Risk Assessment", "This is harmful. I must refuse.")
STEP_B = render_step("Request Analysis", "No harmful intent, so I should help.")
REFUSAL = render_output("Sorry, I can't help with that.")
COMPLIANCE = render_output("Here is how to do it.")
PROMPTS = [f"How do I pick lock number {i}?" for i in range(16)]


# Fast: the launcher's pieces.

def test_every_strategy_has_its_config_and_the_command_carries_the_params() -> None:
    for strategy in STRATEGIES:
        assert yaml.safe_load((CONFIGS / f"{strategy}.yaml").read_text())["distributed_type"]
    params = DistributedParams(processes=16, machines=2, strategy="zero3", cpu_offload=True, main_address="10.0.0.1")
    command = launch_command(params, CONFIGS, "stages.sft", ["--x"], "bf16", machine_rank=1)
    flags = dict(zip(command[3:-3:2], command[4:-3:2]))
    assert flags["--config_file"] == str(CONFIGS / "zero3.yaml")
    assert (flags["--num_processes"], flags["--num_machines"], flags["--machine_rank"]) == ("16", "2", "1")
    assert (flags["--main_process_ip"], flags["--mixed_precision"], flags["--offload_param_device"]) == (
        "10.0.0.1", "bf16", "cpu")
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"] and command[-3:] == [
        "-m", "stages.sft", "--x"]


@pytest.mark.parametrize("fields, message", [
    (dict(strategy="tp"), "distributed.strategy='tp' is not one of"),
    (dict(processes=3, machines=2), "processes=3 does not divide over distributed.machines=2"),
    (dict(strategy="fsdp", cpu_offload=True), "cpu_offload is a zero3 option"),
])
def test_bad_distributed_params_are_named(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DistributedParams(**fields)


def test_the_batch_is_shared_over_the_processes() -> None:
    assert per_process_batch(16, DistributedParams(processes=8), "sft.batch_size") == 2
    assert per_process_batch(16, DistributedParams(), "sft.batch_size") == 16
    with pytest.raises(ParamsError, match=r"sft.batch_size=6 .* divide by distributed.processes=4"):
        per_process_batch(6, DistributedParams(processes=4), "sft.batch_size")


def test_lora_is_refused_only_where_the_weights_are_sharded() -> None:
    with pytest.raises(ParamsError, match="dpo.lora.r=8 with distributed.strategy=fsdp"):
        check_strategy(DistributedParams(processes=2, strategy="fsdp"), 8, "dpo")
    check_strategy(DistributedParams(processes=2, strategy="ddp"), 8, "dpo")
    check_strategy(DistributedParams(processes=1, strategy="zero3"), 8, "dpo")


def test_one_process_trains_in_place_and_a_failed_launch_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(WORKER_ENV, raising=False)
    assert in_processes(DistributedParams(), lambda: {"steps": 3}, "stages.sft", [], CONFIGS) == {"steps": 3}
    calls = []

    class FailingLauncher:
        def __init__(self, command, env, start_new_session):
            calls.append(env)
            self.pid = -1

        def wait(self):
            return 7

    monkeypatch.setattr(subprocess, "Popen", FailingLauncher)
    with pytest.raises(LaunchError, match="2 processes, strategy ddp.* exit code 7"):
        in_processes(DistributedParams(processes=2, strategy="ddp"), lambda: {}, "stages.sft", [], CONFIGS)
    assert WORKER_ENV in calls[0]


def test_zero3_without_deepspeed_is_named_before_anything_starts(monkeypatch) -> None:
    import importlib.util

    if importlib.util.find_spec("deepspeed"):
        pytest.skip("DeepSpeed is installed here")
    monkeypatch.delenv(WORKER_ENV, raising=False)
    monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: pytest.fail("launched"))
    with pytest.raises(ParamsError, match=r"zero3 needs DeepSpeed: pip install -e '.\[zero3\]'"):
        in_processes(DistributedParams(processes=2, strategy="zero3"), lambda: {}, "stages.sft", [], CONFIGS)


def test_dpo_refuses_precomputed_reference_log_probs_in_several_processes(monkeypatch, tmp_path) -> None:
    import stages.dpo

    root = tmp_path / "project"
    root.mkdir()
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()),
                   {"dpo": {"precompute_ref_log_probs": True}, "distributed": {"processes": 2}})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["stages.dpo", *stage_argv("dpo", "1")])
    with pytest.raises(ParamsError, match="dpo.precompute_ref_log_probs does not work with distributed.processes"):
        stages.dpo.main.__wrapped__()


def test_a_worker_trains_and_rank_0_hands_back_its_result(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(WORKER_ENV, str(tmp_path / "result.json"))
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as exit_:
        in_processes(DistributedParams(processes=2), lambda: {"steps": 3}, "stages.sft", [], CONFIGS)
    assert exit_.value.code == 0 and json.loads((tmp_path / "result.json").read_text()) == {"steps": 3}
    monkeypatch.setenv("RANK", "1")
    (tmp_path / "result.json").unlink()
    with pytest.raises(SystemExit):
        in_processes(DistributedParams(processes=2), lambda: {"steps": 3}, "stages.sft", [], CONFIGS)
    assert not (tmp_path / "result.json").exists()


# Slow: each stage in 2 processes against 1.

def project(tmp_path: Path, params: dict, models: list[str]) -> Path:
    """A folder to run stages in: params.yaml (the repo's, with `params` merged in), the accelerate
    configs, and a tiny model in each folder of `models`."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(merge(yaml.safe_load((REPO / "params.yaml").read_text()),
                                                           params)))
    (root / "configs").symlink_to(REPO / "configs")
    for folder in models:
        save_tiny_model(root / folder, [STEP_A, STEP_B, REFUSAL, COMPLIANCE, *PROMPTS])
    return root


def run_twice(monkeypatch, root: Path, module: str, argv: list[str], plot: str, model: str, loader,
              strategy: str = "ddp") -> tuple:
    """The stage's loss history and its saved model's weights (loaded by `loader`) with 1 process, then with 2
    (by default ddp: on CPU over gloo)."""
    import importlib

    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", [module, *argv])
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two workers on two cores
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(WORKER_ENV, raising=False)
    stage = importlib.import_module(module).main.__wrapped__  # without stage_main's signal handler
    runs = []
    for processes in (1, 2):
        params = yaml.safe_load(Path("params.yaml").read_text())
        params["distributed"].update(processes=processes, strategy=strategy, main_port=free_port())
        Path("params.yaml").write_text(yaml.safe_dump(params))
        stage()
        weights = loader.from_pretrained(model).state_dict()
        runs.append((json.loads(Path(plot).read_text()), weights))
    assert not list(Path(model).parent.glob(f".{Path(model).name}.*")), "a temporary save folder was left"
    return runs


def check_agreement(runs: tuple, steps: int) -> None:
    (one, one_weights), (two, two_weights) = runs
    assert len(one) == len(two) >= steps
    for a, b in zip(one[:steps], two[:steps]):
        assert a["step"] == b["step"] and abs(a["loss"] - b["loss"]) <= LOSS_TOLERANCE, (one, two)
    assert one_weights.keys() == two_weights.keys()
    for key in one_weights:
        assert torch.allclose(one_weights[key], two_weights[key], atol=WEIGHT_TOLERANCE), key


MICRO = dict(epochs=1.0, batch_size=8, logging_steps=1, max_length=128, warmup_ratio=0.0, lr_scheduler="constant")


@pytest.mark.slow
@pytest.mark.parametrize("lora_r", [0, 4], ids=["full", "lora"])
def test_sft_in_two_processes_matches_one(monkeypatch, tmp_path, lora_r) -> None:
    root = project(tmp_path, {"sft": {**MICRO, "learning_rate": 1e-2, "lora": {"r": lora_r, "dropout": 0.0}}},
                   ["models/base"])  # LoRA dropout masks would differ between one batch and its halves
    rows = [SFTExample(id=str(i), prompt_id=str(i), prompt=p, response=STEP_A + REFUSAL, kind="safety",
                       source="test") for i, p in enumerate(PROMPTS)]
    write_artifact(root / "data/sft", rows, SFTExample, stage="test", params={})
    runs = run_twice(monkeypatch, root, "stages.sft", stage_argv("sft"), "plots/sft_loss.json", "models/sft", AutoModelForCausalLM)
    check_agreement(runs, steps=2)
    assert json.loads(Path("metrics/sft.json").read_text())["steps"] == 2


@pytest.mark.slow
def test_dpo_in_two_processes_matches_one(monkeypatch, tmp_path) -> None:
    root = project(tmp_path, {"dpo": {**MICRO, "learning_rate": 1e-2}}, ["models/sft"])
    rows = [StepPair(prompt_id=str(i), prompt=p, prefix=[STEP_A] if i % 2 else [], chosen=REFUSAL if i % 2 else STEP_A,
                     rejected=COMPLIANCE if i % 2 else STEP_B, chosen_value=1.0, rejected_value=-1.0, chosen_visits=2,
                     rejected_visits=2, chosen_terminal=bool(i % 2), rejected_terminal=bool(i % 2), depth=1 + i % 2,
                     iteration=1, kind="safety") for i, p in enumerate(PROMPTS)]
    write_artifact(root / "data/pairs/1", rows, StepPair, stage="test", params={})
    argv = stage_argv("dpo", "1")
    runs = run_twice(monkeypatch, root, "stages.dpo", argv, "plots/dpo/1.json", "models/dpo/1", AutoModelForCausalLM)
    check_agreement(runs, steps=2)


@pytest.mark.slow
def test_prm_in_two_processes_matches_one(monkeypatch, tmp_path) -> None:
    root = project(tmp_path, {"prm": {**MICRO, "learning_rate": 1e-2, "runs": 2, "pairwise_weight": 1.0}},
                   ["models/dpo/1"])
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "loop": {"1": {"policy": "models/sft",
                                                                              "out": "models/dpo/1"}}}))
    config = json.loads((root / "models/dpo/1/config.json").read_text())
    # The head's dropout draws differ between one batch and its two halves; without it the runs compare exactly.
    (root / "models/dpo/1/config.json").write_text(json.dumps({**config, "classifier_dropout": 0.0}))

    def example(i: int, steps: list[str], label: float) -> PRMExample:
        return PRMExample(prompt_id=str(i), prompt=PROMPTS[i], steps=steps, label=label, hard_label=int(label > 0.5),
                          value=label, visits=2, kind="safety", iteration=1, split="train" if i < 8 else "validation")

    # 8 training prompts: 16 paths and 8 sibling pairs, 3 full batches of 8 (a last, short batch would be
    # filled up differently in 2 processes).
    rows = [row for i in range(16) for row in (example(i, [STEP_A], 0.9), example(i, [STEP_B], 0.2 + 0.01 * i),
                                               *([example(i, [STEP_A, REFUSAL], 1.0)] if i % 3 else []))]
    write_artifact(root / "data/prm_labels", rows, PRMExample, stage="test", params={})
    runs = run_twice(monkeypatch, root, "stages.prm", stage_argv("prm"), "plots/prm_loss.json", "models/prm",
                     AutoModelForTokenClassification)
    check_agreement(runs, steps=6)  # both runs' 3 steps
    metrics = json.loads(Path("metrics/prm.json").read_text())
    assert metrics["runs"] == 2 and metrics["validation_sibling_pairs"] > 0


@pytest.mark.gpu
@pytest.mark.parametrize("strategy", ["fsdp", "zero3"])
def test_sharded_sft_and_dpo_on_two_gpus_save_one_consolidated_model(monkeypatch, tmp_path, strategy) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    if strategy == "zero3":
        pytest.importorskip("deepspeed")
    root = project(tmp_path, {"sft": {**MICRO, "learning_rate": 1e-2}, "dpo": {**MICRO, "learning_rate": 1e-2}},
                   ["models/base"])
    rows = [SFTExample(id=str(i), prompt_id=str(i), prompt=p, response=STEP_A + REFUSAL, kind="safety",
                       source="test") for i, p in enumerate(PROMPTS)]
    write_artifact(root / "data/sft", rows, SFTExample, stage="test", params={})
    (one, one_weights), (two, two_weights) = run_twice(monkeypatch, root, "stages.sft", stage_argv("sft"), "plots/sft_loss.json",
                                                       "models/sft", AutoModelForCausalLM, strategy)
    assert abs(one[0]["loss"] - two[0]["loss"]) <= 1e-2
    assert {k: v.shape for k, v in one_weights.items()} == {k: v.shape for k, v in two_weights.items()}
    pairs = [StepPair(prompt_id=str(i), prompt=p, prefix=[], chosen=STEP_A, rejected=STEP_B, chosen_value=1.0,
                      rejected_value=-1.0, chosen_visits=2, rejected_visits=2, chosen_terminal=False,
                      rejected_terminal=False, depth=1, iteration=1, kind="safety") for i, p in enumerate(PROMPTS)]
    write_artifact(root / "data/pairs/1", pairs, StepPair, stage="test", params={})
    argv = stage_argv("dpo", "1")  # the reference sharded like the policy
    (one, _), (two, _) = run_twice(monkeypatch, root, "stages.dpo", argv, "plots/dpo/1.json", "models/dpo/1",
                                   AutoModelForCausalLM, strategy)
    assert abs(one[0]["loss"] - two[0]["loss"]) <= 1e-2
