"""The safety-informed reward R = (k1 + k2) S + k1 S H: its three properties, the baseline, validation."""

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stair.reward import (
    REWARDS,
    RewardParams,
    compute_reward,
    fixed_scores,
    outcome,
    reward_range,
    safety_informed,
)

GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)
# Valid parameters, kept away from magnitudes where float rounding (not the formula) decides a sign.
k1s = st.floats(min_value=1.0, max_value=100.0)
k2s = st.floats(min_value=0.01, max_value=1.0)
scores = st.floats(min_value=-1.0, max_value=1.0)
positive = st.floats(min_value=0.01, max_value=1.0)
negative = st.floats(min_value=-1.0, max_value=-0.01)


def _r(s: float, h: float, k1: float = 1.0, k2: float = 1.0, kind: str = "safety") -> float:
    return compute_reward(RewardParams(k1=k1, k2=k2), s, h, kind)


# ---------------------------------------------------------------- the paper's case, by hand


@pytest.mark.parametrize(
    "s, h, expected",
    [
        (1.0, 1.0, 3.0),     # 2*1 + 1*1
        (1.0, -1.0, 1.0),    # 2 - 1: a safe but useless answer is still positive
        (1.0, 0.0, 2.0),
        (0.5, 0.5, 1.25),    # 1 + 0.25
        (0.5, -1.0, 0.5),    # 1 - 0.5
        (0.0, 1.0, 0.0),
        (0.0, -1.0, 0.0),
        (-0.5, 0.5, -1.25),  # -1 - 0.25
        (-1.0, -1.0, -1.0),  # -2 + 1: an unsafe answer that does not help
        (-1.0, 1.0, -3.0),   # -2 - 1: fully helping with harm is the worst
    ],
)
def test_paper_reward_is_2s_plus_sh(s: float, h: float, expected: float) -> None:
    assert _r(s, h) == pytest.approx(expected)
    assert safety_informed(s, h, "helpfulness", 1.0, 1.0) == pytest.approx(expected)


def test_other_k_by_hand() -> None:
    # k1=2, k2=0.5: R = 2.5 S + 2 S H
    assert _r(1.0, 1.0, k1=2, k2=0.5) == pytest.approx(4.5)
    assert _r(1.0, -1.0, k1=2, k2=0.5) == pytest.approx(0.5)
    assert _r(-0.5, 0.5, k1=2, k2=0.5) == pytest.approx(-1.75)
    assert _r(-1.0, -1.0, k1=2, k2=0.5) == pytest.approx(-0.5)


def test_default_params_are_the_papers() -> None:
    params = RewardParams()
    assert (params.name, params.k1, params.k2) == ("safety_informed", 1.0, 1.0)


# ---------------------------------------------------------------- the three properties on a grid


@pytest.mark.parametrize("k1, k2", [(1.0, 1.0), (1.0, 0.1), (3.0, 1.0), (10.0, 0.01)])
def test_properties_on_grid(k1: float, k2: float) -> None:
    r = {(s, h): _r(s, h, k1, k2) for s, h in itertools.product(GRID, GRID)}
    # 1. every safe answer beats every unsafe one
    safe = [v for (s, _), v in r.items() if s > 0]
    unsafe = [v for (s, _), v in r.items() if s < 0]
    assert min(safe) > 0 > max(unsafe)
    # 2. H helps when safe, hurts when unsafe, does nothing at S=0
    for s in GRID:
        row = [r[s, h] for h in GRID]
        if s > 0:
            assert row == sorted(row) and len(set(row)) == len(row)
        elif s < 0:
            assert row == sorted(row, reverse=True) and len(set(row)) == len(row)
        else:
            assert set(row) == {0.0}
    # 3. more safety is always better, whatever H
    for h in GRID:
        col = [r[s, h] for s in GRID]
        assert col == sorted(col) and len(set(col)) == len(col)


# ---------------------------------------------------------------- the three properties for any valid k


@settings(max_examples=150, deadline=None)
@given(k1=k1s, k2=k2s, s_safe=positive, s_unsafe=negative, h_safe=scores, h_unsafe=scores)
def test_any_safe_beats_any_unsafe(k1, k2, s_safe, s_unsafe, h_safe, h_unsafe) -> None:
    safe = _r(s_safe, h_safe, k1, k2)
    unsafe = _r(s_unsafe, h_unsafe, k1, k2)
    assert safe > 0 > unsafe
    assert safe > unsafe


@settings(max_examples=150, deadline=None)
@given(k1=k1s, k2=k2s, s=scores, h1=scores, h2=scores)
def test_helpfulness_direction_follows_safety_sign(k1, k2, s, h1, h2) -> None:
    assume(h2 - h1 > 1e-3 and abs(s) > 1e-3)
    low, high = _r(s, h1, k1, k2), _r(s, h2, k1, k2)
    if s > 0:
        assert high > low
    else:
        assert high < low


@settings(max_examples=150, deadline=None)
@given(k1=k1s, k2=k2s, s=scores, h=scores)
def test_affine_in_h_with_s_fixed(k1, k2, s, h) -> None:
    # with S fixed, R(H) = a + b H: a single-objective (linear) reward in H, slope k1 S
    a = _r(s, 0.0, k1, k2)
    b = _r(s, 1.0, k1, k2) - a
    assert _r(s, h, k1, k2) == pytest.approx(a + b * h, abs=1e-9)
    assert b == pytest.approx(k1 * s, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(k1=k1s, k2=k2s, h=scores, s1=scores, s2=scores)
def test_affine_and_increasing_in_s_with_h_fixed(k1, k2, h, s1, s2) -> None:
    # with H fixed, R(S) = c S with c = k1 + k2 + k1 H >= k2 > 0
    c = _r(1.0, h, k1, k2)
    assert c >= k2 - 1e-9
    assert _r(s1, h, k1, k2) == pytest.approx(c * s1, abs=1e-9)
    assume(s2 - s1 > 1e-3)
    assert _r(s2, h, k1, k2) > _r(s1, h, k1, k2)


@settings(max_examples=150, deadline=None)
@given(k1=k1s, k2=k2s, s=scores, h=scores, name=st.sampled_from(sorted(REWARDS)),
       kind=st.sampled_from(["safety", "helpfulness"]))
def test_reward_range_bounds_every_reward(k1, k2, s, h, name, kind) -> None:
    params = RewardParams(name=name, k1=k1, k2=k2)
    low, high = reward_range(params)
    assert low < high
    assert low - 1e-9 <= compute_reward(params, s, h, kind) <= high + 1e-9


def test_reward_range_is_attained() -> None:
    params = RewardParams(k1=2.0, k2=0.5)
    assert reward_range(params) == (-4.5, 4.5)
    assert compute_reward(params, 1.0, 1.0, "safety") == 4.5
    assert compute_reward(params, -1.0, 1.0, "safety") == -4.5
    assert reward_range(RewardParams()) == (-3.0, 3.0)
    assert reward_range(RewardParams(name="outcome", k1=5.0)) == (-1.0, 1.0)


# ---------------------------------------------------------------- the outcome baseline


def test_outcome_uses_safety_for_safety_prompts_and_helpfulness_otherwise() -> None:
    params = RewardParams(name="outcome", k1=2.0, k2=0.5)
    assert compute_reward(params, -1.0, 0.5, "safety") == -1.0
    assert compute_reward(params, 0.5, -1.0, "safety") == 0.5
    assert compute_reward(params, -1.0, 0.5, "helpfulness") == 0.5
    assert compute_reward(params, 1.0, -0.5, "helpfulness") == -0.5
    assert outcome(0.25, 0.75, "safety", 1.0, 1.0) == 0.25


def test_safety_informed_ignores_kind() -> None:
    for s, h in itertools.product(GRID, GRID):
        assert _r(s, h, kind="safety") == _r(s, h, kind="helpfulness")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"k1": 0.5}, "reward.k1"),
        ({"k1": 0.0}, "reward.k1"),
        ({"k1": -2.0}, "reward.k1"),
        ({"k2": 0.0}, "reward.k2"),
        ({"k2": -0.1}, "reward.k2"),
        ({"k2": 1.5}, "reward.k2"),
        ({"k2": float("nan")}, "reward.k2"),
        ({"name": "safe_only"}, "reward.name"),
        ({"name": ""}, "reward.name"),
    ],
)
def test_invalid_params_raise_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RewardParams(**kwargs)


def test_bad_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="outcome") as err:
        RewardParams(name="nope")
    assert "safety_informed" in str(err.value)


@pytest.mark.parametrize("k1, k2", [(1.0, 1.0), (1.0, 1e-6), (7.5, 0.3)])
def test_boundary_params_are_valid(k1: float, k2: float) -> None:
    RewardParams(k1=k1, k2=k2)


def test_nan_k1_is_rejected() -> None:
    with pytest.raises(ValueError, match="reward.k1"):
        RewardParams(k1=float("nan"))


# ---------------------------------------------------------------- the official evaluator's reward


@pytest.mark.parametrize("k1, k2", [(1.0, 1.0), (2.0, 0.5), (4.0, 0.1)])
def test_official_reward_on_a_grid(k1: float, k2: float) -> None:
    params = RewardParams(name="official", k1=k1, k2=k2)
    for s, h in itertools.product(GRID, GRID):
        # safety prompts: H is fixed at -1, so R = (k1 + k2) S - k1 S = k2 S (= S with the paper's k2 = 1)
        assert compute_reward(params, s, h, "safety") == pytest.approx(k2 * s)
        # helpfulness prompts: S is fixed at +1, so R = k1 + k2 + k1 H
        assert compute_reward(params, s, h, "helpfulness") == pytest.approx(k1 + k2 + k1 * h)
    assert compute_reward(RewardParams(name="official"), -1.0, 1.0, "safety") == -1.0  # R = S at k1 = k2 = 1


def test_official_fixed_scores_by_kind() -> None:
    assert fixed_scores(RewardParams(name="official"), "safety") == {"helpfulness": -1.0}
    assert fixed_scores(RewardParams(name="official"), "helpfulness") == {"safety": 1.0}
    assert fixed_scores(RewardParams(), "safety") == fixed_scores(RewardParams(name="outcome"), "helpfulness") == {}


def test_official_reward_range_overall_and_by_kind() -> None:
    params = RewardParams(name="official", k1=2.0, k2=0.5)
    assert reward_range(params) == (-0.5, 4.5)
    assert reward_range(params, "safety") == (-0.5, 0.5)
    assert reward_range(params, "helpfulness") == (0.5, 4.5)
    assert reward_range(RewardParams(k1=2.0, k2=0.5), "safety") == (-4.5, 4.5)  # the others don't depend on kind


@pytest.mark.parametrize("kind", ["safety", "helpfulness"])
def test_official_values_scale_to_the_whole_unit_interval_by_kind(kind: str) -> None:
    from stair.prm import scale_value

    params = RewardParams(name="official", k1=2.0, k2=0.5)
    values = [compute_reward(params, s, h, kind) for s, h in itertools.product(GRID, GRID)]
    scaled = [scale_value(v, kind, params) for v in values]
    assert min(scaled) == 0.0 and max(scaled) == 1.0
