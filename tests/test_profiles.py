"""Profiles: every shipped profile applies to params.yaml cleanly and gives valid params for every stage."""

import shutil
from pathlib import Path

import pytest
import yaml

from stair.cli import main
from stair.config import ParamsError
from stair.profiles import apply_profile, available, load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"


@pytest.fixture
def params(tmp_path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path / "params.yaml"


def test_the_paper_profiles_exist() -> None:
    assert {"paper", "paper-llama-3.1-8b", "paper-qwen2-7b", "paper-stair-sft"} <= set(available(PROFILES))


@pytest.mark.parametrize("name", available(PROFILES))
def test_each_profile_applies_and_every_section_still_validates(name: str, params: Path, monkeypatch) -> None:
    from stages.common import load_section
    from tests.test_config import _stage_params_classes

    sections = _stage_params_classes()
    changes = apply_profile(load_profile(name, PROFILES), params)
    assert changes
    monkeypatch.chdir(params.parent)
    for section, cls in sections.items():
        load_section(section, cls)  # raises ParamsError on a wrong type, range or key


def test_the_paper_settings_reach_params(params: Path) -> None:
    apply_profile(load_profile("paper-stair-sft", PROFILES), params)
    values = yaml.safe_load(params.read_text())
    assert values["mcts"]["iterations"] == 200 and values["mcts"]["max_depth"] == 7
    assert values["mcts"]["children"] == 4 and values["mcts"]["c"] == 1.5 and values["mcts"]["temperature"] == 1.2
    assert values["pairs"]["min_visits"] == 4 and values["pairs"]["margin"] == 0.5
    assert values["pairs"]["good_threshold"] == 0.8
    assert values["dpo"]["max_length"] == values["prm"]["max_length"] == 2048
    assert values["backend"]["name"] == "vllm" and values["reward"]["name"] == "official"
    assert values["dpo"]["sft_weight"] == 0.0  # plain DPO, as the paper
    assert values["base"]["model"] == "thu-ml/STAIR-Llama-3.1-8B-SFT" and values["sft"]["skip"] is True
    assert len(values["loop"]) == 3  # K = 3, as in the paper


def test_the_paper_profile_trains_at_real_model_rates(params: Path) -> None:
    # The default's rates are for a from-scratch 4M-parameter model; inherited by an 8B model they would wreck it.
    default = yaml.safe_load(params.read_text())
    for name in ("paper-llama-3.1-8b", "paper-qwen2-7b"):
        values = load_profile(name, PROFILES)
        for section, ceiling in (("sft", 1e-4), ("dpo", 1e-5), ("prm", 1e-4)):
            rate = values[section]["learning_rate"]
            assert rate <= ceiling and rate < default[section]["learning_rate"] / 10, (name, section, rate)
        assert values["prm"]["runs"] == 1


def test_small_floats_are_written_as_floats(params: Path) -> None:
    # repr(5e-07) is "5e-07", which YAML 1.1 readers (PyYAML, DVC) take for a string.
    apply_profile({"dpo": {"learning_rate": 5e-7}, "sft": {"learning_rate": 1e-5}}, params)
    values = yaml.safe_load(params.read_text())
    assert values["dpo"]["learning_rate"] == 5e-7 and values["sft"]["learning_rate"] == 1e-5


def test_applying_keeps_comments_and_touches_only_the_profile_keys(params: Path) -> None:
    before = params.read_text()
    apply_profile({"mcts": {"iterations": 7}}, params)
    after = params.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines()) and len(changed) == 1
    assert "iterations: 7" in changed[0][1] and "# The self-improvement loop" in after


def test_a_misspelt_key_is_refused_before_anything_is_written(params: Path) -> None:
    before = params.read_text()
    with pytest.raises(ParamsError, match="mcts.iteratoins"):
        apply_profile({"mcts": {"iteratoins": 7}}, params)
    assert params.read_text() == before


def test_free_form_mappings_are_replaced_whole(params: Path) -> None:
    apply_profile({"loop": {"1": {"policy": "models/sft", "out": "models/dpo/1"}}}, params)
    assert list(yaml.safe_load(params.read_text())["loop"]) == ["1"]


def test_extends_cycles_and_unknown_profiles_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b\n")
    (tmp_path / "b.yaml").write_text("extends: [a]\n")
    with pytest.raises(ParamsError, match="a -> b -> a"):
        load_profile("a", tmp_path)
    with pytest.raises(ParamsError, match="no profile 'c'.*a, b"):
        load_profile("c", tmp_path)


def test_a_bad_profile_or_params_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text("extends: 5\n")
    with pytest.raises(ParamsError, match="extends should name a profile"):
        load_profile("odd", tmp_path)
    for text, match in [(None, "not found"), ("a: [\n", "not valid YAML"), ("", "should map section names")]:
        params = tmp_path / "params.yaml"
        params.unlink(missing_ok=True)
        if text is not None:
            params.write_text(text)
        with pytest.raises(ParamsError, match=match):
            apply_profile({"seed": 1}, params)


def test_cli_applies_a_profile(params: Path, capsys) -> None:
    assert main(["profile", "paper-qwen2-7b", "--folder", str(PROFILES), "--params", str(params)]) == 0
    assert "base.model: 'tiny' -> 'Qwen/Qwen2-7B-Instruct'" in capsys.readouterr().out
    assert main(["profile", "nope", "--folder", str(PROFILES), "--params", str(params)]) == 1
