"""`from_mapping`: params sections into dataclasses, with errors that name the bad key and what is valid."""

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from stair.config import RANGES, ParamsError, from_mapping
from stair.reward import RewardParams


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    steps: int = 10


@dataclass(frozen=True)
class Outer:
    name: str = "sft"
    inner: Inner = field(default_factory=Inner)
    layers: tuple[int, ...] = (1, 2)
    device: Literal["cpu", "cuda"] = "cpu"
    hub_id: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class Checked:
    k: int = 1

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"k={self.k} must be >= 0")


@dataclass(frozen=True)
class Required:
    path: str
    n: int = 1


WHERE = "params.yaml: sft"


def test_empty_or_none_gives_defaults() -> None:
    assert from_mapping(Outer, None, WHERE) == Outer()
    assert from_mapping(Outer, {}, WHERE) == Outer()


def test_nested_dataclass_tuple_and_optional() -> None:
    got = from_mapping(Outer, {"name": "x", "inner": {"lr": 0.5}, "layers": [4, 5, 6], "device": "cuda",
                               "hub_id": "org/model", "enabled": False}, WHERE)
    assert got == Outer(name="x", inner=Inner(lr=0.5, steps=10), layers=(4, 5, 6), device="cuda",
                        hub_id="org/model", enabled=False)
    assert isinstance(got.inner, Inner)
    assert isinstance(got.layers, tuple)


def test_int_is_accepted_for_float() -> None:
    assert from_mapping(Inner, {"lr": 1}, WHERE).lr == 1


def test_unknown_key_names_key_and_lists_valid_keys() -> None:
    with pytest.raises(ParamsError) as err:
        from_mapping(Outer, {"nmae": "x"}, WHERE)
    message = str(err.value)
    assert message.startswith("params.yaml: sft.nmae is not a parameter")
    assert "valid keys: device, enabled, hub_id, inner, layers, name" in message


def test_unknown_nested_key_has_dotted_location() -> None:
    with pytest.raises(ParamsError) as err:
        from_mapping(Outer, {"inner": {"step": 3}}, WHERE)
    assert "params.yaml: sft.inner.step is not a parameter; valid keys: lr, steps" in str(err.value)


@pytest.mark.parametrize("mapping, location", [
    ({"name": 3}, "params.yaml: sft.name=3"),
    ({"inner": {"lr": "fast"}}, "params.yaml: sft.inner.lr='fast'"),
    ({"inner": {"steps": 2.5}}, "params.yaml: sft.inner.steps=2.5"),
    ({"inner": {"steps": True}}, "params.yaml: sft.inner.steps=True"),  # bool is not an int here
    ({"enabled": "yes"}, "params.yaml: sft.enabled='yes'"),
    ({"device": "tpu"}, "params.yaml: sft.device='tpu'"),
    ({"hub_id": 5}, "params.yaml: sft.hub_id=5"),
    ({"layers": "1,2"}, "params.yaml: sft.layers='1,2'"),
])
def test_wrong_type_names_dotted_field(mapping: dict, location: str) -> None:
    with pytest.raises(ParamsError) as err:
        from_mapping(Outer, mapping, WHERE)
    assert str(err.value).startswith(location)
    assert "should be" in str(err.value)


def test_not_a_mapping() -> None:
    with pytest.raises(ParamsError, match="params.yaml: sft: expected a mapping, got list"):
        from_mapping(Outer, [1, 2], WHERE)
    with pytest.raises(ParamsError, match="params.yaml: sft.inner: expected a mapping, got int"):
        from_mapping(Outer, {"inner": 5}, WHERE)


def test_post_init_error_is_wrapped_with_location() -> None:
    assert from_mapping(Checked, {"k": 0}, "params.yaml: c").k == 0
    with pytest.raises(ParamsError) as err:
        from_mapping(Checked, {"k": -1}, "params.yaml: c")
    assert str(err.value) == "params.yaml: c: k=-1 must be >= 0"
    assert isinstance(err.value, ValueError)


def test_post_init_error_in_a_real_params_class() -> None:
    with pytest.raises(ParamsError, match=r"^params.yaml: reward: reward.k1=0.5 must be >= 1$"):
        from_mapping(RewardParams, {"k1": 0.5}, "params.yaml: reward")
    assert from_mapping(RewardParams, {"k1": 2, "k2": 0.5}, "params.yaml: reward") == RewardParams(k1=2, k2=0.5)


def test_missing_required_field_is_wrapped() -> None:
    with pytest.raises(ParamsError, match=r"^params.yaml: x: .*path"):
        from_mapping(Required, {"n": 2}, "params.yaml: x")
    assert from_mapping(Required, {"path": "a"}, "params.yaml: x") == Required(path="a")


@pytest.mark.parametrize("value", [0, False, "", []])
def test_falsy_non_mapping_is_an_error(value) -> None:
    with pytest.raises(ParamsError, match="params.yaml: sft.inner: expected a mapping"):
        from_mapping(Outer, {"inner": value}, WHERE)


def test_tuple_element_types_are_checked() -> None:
    with pytest.raises(ParamsError, match="params.yaml: sft.layers"):
        from_mapping(Outer, {"layers": [1, "two"]}, WHERE)


def test_a_float_written_without_a_dot_is_read_as_a_float() -> None:
    from stair.training.dpo import DPOParams

    text = yaml.safe_load("learning_rate: 1e-4")["learning_rate"]  # what PyYAML and `dvc exp run -S` give
    assert text == "1e-4"
    assert from_mapping(DPOParams, {"learning_rate": text}, "params.yaml: dpo").learning_rate == 1e-4
    with pytest.raises(ParamsError, match="dpo.learning_rate='fast' should be of type float"):
        from_mapping(DPOParams, {"learning_rate": "fast"}, "params.yaml: dpo")
    with pytest.raises(ParamsError, match="dpo.epochs=-1.0 must be"):
        from_mapping(DPOParams, {"epochs": "-1"}, "params.yaml: dpo")


def _stage_params_classes() -> dict[str, type]:
    """Every params dataclass a stage loads, by section (found in the stages' `load_section` calls)."""
    import importlib
    import re

    found = {}
    for file in sorted(Path("stages").glob("*.py")):
        module = importlib.import_module(f"stages.{file.stem}")
        for section, name in re.findall(r'load_section\("(\w+)", (\w+)\)', file.read_text()):
            found[section] = getattr(module, name)
    return found


def _numeric_fields(cls: type, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _numeric_fields(hint, f"{prefix}{f.name}.")
        elif {int, float} & {hint, *typing.get_args(hint)}:
            yield f"{prefix}{f.name}", f.name


def test_every_numeric_param_of_every_section_has_a_range() -> None:
    classes = _stage_params_classes()
    assert len(classes) >= 14
    missing = [f"{section}.{path}" for section, cls in classes.items() for path, name in _numeric_fields(cls)
               if name not in RANGES]
    assert not missing, f"add these to stair.config.RANGES: {missing}"


def test_params_yaml_is_in_range() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    for section, cls in _stage_params_classes().items():
        from_mapping(cls, params.get(section), f"params.yaml: {section}")


@pytest.mark.parametrize("section, key, value, expected", [
    ("mcts", "top_p", 7.5, "mcts.top_p=7.5 must be in (0, 1]"),
    ("mcts", "temperature", -0.1, "mcts.temperature=-0.1 must be >= 0"),
    ("mcts", "concurrent_trees", 0, "mcts.concurrent_trees=0 must be > 0"),
    ("sft", "learning_rate", 0.0, "sft.learning_rate=0.0 must be > 0"),
    ("sft", "warmup_ratio", 1.5, "sft.warmup_ratio=1.5 must be in [0, 1]"),
    ("sft", "lora", {"dropout": -0.5}, "sft.lora.dropout=-0.5 must be in [0, 1]"),
    ("search", "budgets", [2, 0], "search.budgets=(2, 0) must be > 0"),
    ("data", "heldout_fraction", 2, "data.heldout_fraction=2 must be in [0, 1]"),
    ("data", "world", {"seed_math": -3}, "data.world.seed_math=-3 must be >= 0"),
    ("prm_labels", "validation_share", float("nan"), "prm_labels.validation_share=nan must be in [0, 1]"),
    ("backend", "gpu_memory_utilization", 0.0, "backend.gpu_memory_utilization=0.0 must be in (0, 1]"),
    ("eval", "max_new_tokens", 0, "eval.max_new_tokens=0 must be > 0"),
    ("eval", "suites", {"xstest": {"limit": -1}}, "eval.suites.xstest.limit=-1 must be >= 0"),
])
def test_out_of_range_values_name_the_key_and_the_range(section: str, key: str, value, expected: str) -> None:
    with pytest.raises(ParamsError) as err:
        from_mapping(_stage_params_classes()[section], {key: value}, section)
    assert expected in str(err.value)


def test_a_misspelt_suite_is_an_error_listing_the_known_ones() -> None:
    eval_params = _stage_params_classes()["eval"]
    with pytest.raises(ParamsError, match=r"eval.suites.xstset: no loader 'xstset'; known suites: advbench, .*xstest"):
        from_mapping(eval_params, {"suites": {"xstset": {"limit": 4}}}, "params.yaml: eval")
    with pytest.raises(ParamsError, match=r"eval.suites.advbench.jailbreaks: \['dan'\] unknown"):
        from_mapping(eval_params, {"suites": {"advbench": {"jailbreaks": ["dan"]}}}, "params.yaml: eval")
    assert from_mapping(eval_params, {"suites": {"mine": {"loader": "advbench", "path": "x.csv"}}}, "e").suites


def test_the_registry_names_the_class_every_stage_loads_and_every_section_of_params_yaml() -> None:
    from stages.registry import SECTIONS, TOP_LEVEL, section_class

    assert {section: section_class(section) for section in SECTIONS} == _stage_params_classes()
    assert set(yaml.safe_load(Path("params.yaml").read_text())) == TOP_LEVEL


@pytest.mark.parametrize("section", sorted(yaml.safe_load(Path("params.yaml").read_text()).keys() - {"seed", "loop"}))
def test_a_typo_in_any_section_fails_the_first_stage_at_once(section: str, tmp_path: Path, monkeypatch) -> None:
    """The data stage runs first; it checks every section before it works, so a typo in `eval` fails there."""
    from stages.common import load_section
    from stair.data import DataParams

    params = yaml.safe_load(Path("params.yaml").read_text())
    params[section]["no_such_key"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=rf"params.yaml: {section}.no_such_key is not a parameter"):
        load_section("data", DataParams)


def test_an_unknown_section_is_named(tmp_path: Path, monkeypatch) -> None:
    from stages.common import load_section
    from stair.data import DataParams

    (tmp_path / "params.yaml").write_text("mtcs: {iterations: 3}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match="mtcs is not a section"):
        load_section("data", DataParams)


@pytest.mark.parametrize("section, key, value, match", [
    ("data", "source", "filez", "data.source='filez' is not 'builtin' or 'files'"),
    ("data", "source", "files", "data.sft and data.prompts must name files"),
    ("data", "sft_columns", {"prompt": ["a"]}, "data.sft_columns: prompt should name a column"),
    ("data", "prompt_columns", {"txt": "question"}, "data.prompt_columns: 'txt' is not a field; fields: text"),
    ("backend", "name", "vlm", "backend.name='vlm' is not one of"),
    ("backend", "dtype", "float33", "backend.dtype='float33' is not one of"),
    ("backend", "device", "gpu", "backend.device='gpu' is not auto, cpu"),
    ("judges", "safety", "foo", "judges.safety='foo' is not one of"),
    ("search", "aggregation", "median", "search.aggregation='median' is not one of"),
    ("eval", "safety_judge", "foo", "eval.safety_judge='foo' is not"),
    ("publish", "repo_id", "org/..", "not a Hub repo id"),
    ("base", "model", " ", "base.model is empty"),
])
def test_a_bad_choice_in_any_section_fails_the_first_stage_at_once(section: str, key: str, value, match: str,
                                                                   tmp_path: Path, monkeypatch) -> None:
    from stages.common import load_section
    from stair.data import DataParams

    params = yaml.safe_load(Path("params.yaml").read_text())
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=match):
        load_section("data", DataParams)


def test_an_unknown_lr_scheduler_fails_before_a_trainer_is_built() -> None:
    from stair.training.common import training_args
    from stair.training.sft import SFTParams

    with pytest.raises(ParamsError, match="lr_scheduler='foo' is not one of linear, cosine"):
        training_args(SFTParams(lr_scheduler="foo"))


@pytest.mark.parametrize("text, match", [
    ("a: [\n", "params.yaml is not valid YAML"), ("- a: 1\n", "should map section names to sections, got a list"),
    ("5\n", "got a int"), ("loop: {'1': models/sft}\n", "loop must map"), ("loop: {'1': {policy: a}}\n", "loop must map"),
])
def test_a_malformed_params_file_is_one_clear_error(text: str, match: str, tmp_path: Path, monkeypatch) -> None:
    from stages.common import loop_models, read_params

    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=match):
        read_params()
        loop_models()
    (tmp_path / "params.yaml").write_bytes(b"seed: \xff\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        read_params()


def _differences(default, expected, where: str) -> list[str]:
    if isinstance(default, dict) and isinstance(expected, dict):
        return [d for key in sorted(default.keys() | expected.keys())
                for d in _differences(default.get(key), expected.get(key), f"{where}.{key}")]
    return [] if default == expected else [f"{where}: default {default!r}, params.yaml {expected!r}"]


@pytest.mark.parametrize("section", sorted(set(yaml.safe_load(Path("params.yaml").read_text())) - {"seed", "loop"}))
def test_dataclass_defaults_are_params_yaml(section: str) -> None:
    """`Params()` is the run params.yaml describes, so library callers and tests get the pipeline's settings.

    Compared as the stage loads it (stages.common.load_section: the top-level seed fills every seed field, lists
    become tuples); a field params.yaml leaves out (data.max_record_chars, most of data.world) keeps its default.
    `seed` and `loop` have no dataclass: they are read where used (stages.common).
    """
    from stages.common import with_seed
    from stages.registry import section_class

    params = yaml.safe_load(Path("params.yaml").read_text())
    cls = section_class(section)
    loaded = from_mapping(cls, with_seed(cls, params[section], params["seed"]), f"params.yaml: {section}")
    differences = _differences(dataclasses.asdict(cls()), dataclasses.asdict(loaded), section)
    assert not differences, "make the dataclass defaults params.yaml's:\n" + "\n".join(differences)
