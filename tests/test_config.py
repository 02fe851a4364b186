"""`from_mapping`: params sections into dataclasses, with errors that name the bad key and what is valid."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from stair.config import ParamsError, from_mapping
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
