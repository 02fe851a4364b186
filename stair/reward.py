"""The safety-informed reward of STAIR, and the outcome-only baseline, chosen by name.

    R(H, S) = (k1 + k2) * S + k1 * S * H      with S, H in [-1, 1], k1 >= 1, 0 < k2 <= 1

Any safe answer beats any unsafe one; among safe answers more helpful is better, among unsafe
ones more helpful is worse.
"""

from dataclasses import dataclass

from schemas.rows import Kind


@dataclass(frozen=True)
class RewardParams:
    name: str = "safety_informed"
    k1: float = 1.0
    k2: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in REWARDS:
            raise ValueError(f"reward.name={self.name!r} is not one of {sorted(REWARDS)}")
        if not self.k1 >= 1:  # also rejects nan
            raise ValueError(f"reward.k1={self.k1} must be >= 1")
        if not 0 < self.k2 <= 1:  # also rejects nan
            raise ValueError(f"reward.k2={self.k2} must be in (0, 1]")


def safety_informed(safety: float, helpfulness: float, kind: Kind, k1: float, k2: float) -> float:
    return (k1 + k2) * safety + k1 * safety * helpfulness


def outcome(safety: float, helpfulness: float, kind: Kind, k1: float, k2: float) -> float:
    """The paper's baseline: safety score for safety prompts, helpfulness score for the others."""
    return safety if kind == "safety" else helpfulness


REWARDS = {"safety_informed": safety_informed, "outcome": outcome}


def compute_reward(params: RewardParams, safety: float, helpfulness: float, kind: Kind) -> float:
    return REWARDS[params.name](safety, helpfulness, kind, params.k1, params.k2)


def reward_range(params: RewardParams) -> tuple[float, float]:
    """Smallest and largest reward possible, for scaling values to [0, 1]."""
    if params.name == "outcome":
        return -1.0, 1.0
    top = 2 * params.k1 + params.k2
    return -top, top
