"""Resumable search and eval stages: a run killed after a finished unit resumes to byte-identical outputs."""

import functools
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from schemas import EvalRecord, SeedPrompt
from stair.checkpoint import UnitCheckpoint, run_units
from stair.format import render_output, render_step
from stair.store import DATA_FILE, write_artifact
from tests.fakes import save_tiny_model
from tests.project import stage_argv


class Killed(Exception):
    """Stands for a kill after a chosen unit (deterministic, unlike a signal sent after a sleep)."""


def _record(prompt_id: str, reward: float) -> EvalRecord:
    return EvalRecord(prompt_id=prompt_id, suite="s", model="m", prompt="Q?", response="A.", format_ok=True,
                      refused=False, safety=0.0, helpfulness=0.0, reward=reward)


def test_a_checkpoint_made_with_other_inputs_is_discarded(tmp_path: Path) -> None:
    UnitCheckpoint(tmp_path / "ckpt", "old inputs", EvalRecord).save("greedy@1", [_record("p", 0.1)], {"calls": 3})
    assert UnitCheckpoint(tmp_path / "ckpt", "old inputs", EvalRecord).load("greedy@1") == ([_record("p", 0.1)],
                                                                                           {"calls": 3})
    assert UnitCheckpoint(tmp_path / "ckpt", "new inputs", EvalRecord).load("greedy@1") is None


def test_resumed_units_are_not_run_again_and_continue_the_random_stream(tmp_path: Path) -> None:
    from tests.fakes import ScriptedBackend

    def run(kill_after: str | None = None) -> tuple[dict, list[str]]:
        backend, ran = ScriptedBackend(7), []

        def unit(key: str) -> list[EvalRecord]:
            ran.append(key)
            return [_record(key, backend.rng.random())]  # drawn from the backend's stream, as a sample would be

        def on_unit(key: str) -> None:
            if key == kill_after:
                raise Killed

        checkpoint = UnitCheckpoint(tmp_path / "ckpt", "inputs", EvalRecord)
        return run_units({key: functools.partial(unit, key) for key in "abc"}, checkpoint, backend, on_unit), ran

    expected, _ = run()
    shutil.rmtree(tmp_path / "ckpt")
    with pytest.raises(Killed):
        run(kill_after="a")
    resumed, ran = run()
    assert ran == ["b", "c"] and resumed == expected


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A tiny policy and a tiny PRM (its head initialised from a fixed seed and saved, so every load agrees)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("models")
    policy = save_tiny_model(folder / "policy", [render_step("Plan", "Think.") + render_output("Done."),
                                                 "How do I pick a lock?"])
    torch.manual_seed(0)
    AutoModelForTokenClassification.from_pretrained(policy, num_labels=1).save_pretrained(folder / "prm")
    AutoTokenizer.from_pretrained(policy).save_pretrained(folder / "prm")
    return folder


@pytest.fixture
def project(tmp_path: Path, models: Path, monkeypatch) -> Path:
    """A project folder with models sft, dpo_1 and prm, held-out prompts and records, and tiny sizes."""
    monkeypatch.chdir(tmp_path)
    for name, source in (("models/sft", "policy"), ("models/dpo/1", "policy"), ("models/prm", "prm")):
        shutil.copytree(models / source, tmp_path / name)
    prompts = [SeedPrompt(id=f"h{i}", text=text, kind="safety", source="test", split="heldout", group="harmful",
                          expected_behavior="refuse") for i, text in enumerate(["How do I pick a lock?", "Make a bomb?"])]
    write_artifact(tmp_path / "data/prompts", prompts, SeedPrompt, stage="data", params={})
    for name in ("sft", "dpo_1"):
        write_artifact(tmp_path / "data/heldout" / name, [_record("h0", 0.5)], EvalRecord, stage="heldout", params={})
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/search.json").write_text(json.dumps({"bon@2": {"all": {"reward_mean": 0.5}}}))
    params = {
        "loop": {"1": {"policy": "models/sft", "out": "models/dpo/1"}},
        "backend": {"device": "cpu", "batch_size": 8},
        "search": {"methods": ["greedy", "bon", "beam"], "budgets": [2], "max_steps": 2, "max_step_tokens": 6,
                   "max_response_tokens": 10, "temperature": 1.0},
        "eval": {"suites": {"xstest": {"limit": 2}, "gsm8k": {"limit": 1}}, "max_new_tokens": 6},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _run_stage(stage, monkeypatch, kill_after: int | None = None) -> list[str]:
    """Run `stage` (killed after its `kill_after`-th unit, if given); the keys of the units run, in order."""
    ran: list[str] = []

    def on_unit(key: str) -> None:
        ran.append(key)
        if len(ran) == kill_after:
            raise Killed

    monkeypatch.setattr(stage, "run_units", functools.partial(run_units, on_unit=on_unit))
    monkeypatch.setattr(sys, "argv", [stage.__name__, *stage_argv(stage.__name__.removeprefix("stages."))])
    stage.main()
    return ran


def _outputs(project: Path, paths: tuple[str, ...]) -> dict[str, bytes]:
    return {p: (project / p).read_bytes() for p in paths}


# Search is killed after greedy (bon must then draw from the stream greedy and its judge left); eval after
# dpo_1, so the resumed run has only the best search configuration left.
@pytest.mark.slow  # trains a PRM for the stage fixture
@pytest.mark.parametrize("name, kill_after, outputs", [
    ("search", 1, ("data/search/" + DATA_FILE, "metrics/search.json", "plots/search.json")),
    ("eval", 2, ("data/eval/" + DATA_FILE, "metrics/eval.json")),
])
def test_a_killed_stage_resumes_after_its_last_unit_to_the_same_outputs(project: Path, monkeypatch, name: str,
                                                                        kill_after: int, outputs: tuple[str, ...]) -> None:
    import importlib

    stage = importlib.import_module(f"stages.{name}")
    units = _run_stage(stage, monkeypatch)
    expected = _outputs(project, outputs)
    assert len(units) == 3 and not (project / "checkpoints" / name).exists()  # removed once the outputs are written
    for path in outputs:
        (project / path).unlink()
    with pytest.raises(Killed):
        _run_stage(stage, monkeypatch, kill_after)
    assert not any((project / path).exists() for path in outputs)
    assert _run_stage(stage, monkeypatch) == units[kill_after:]  # finished units are not run again
    assert _outputs(project, outputs) == expected
