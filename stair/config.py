"""Build a params dataclass from a plain mapping, naming any bad key or value and what would be valid.

Besides types, numbers are checked against `RANGES`: one table for every section, keyed by the field's
name, because a name means one thing wherever it appears (`top_p` is a probability, `batch_size` a
count). A test keeps every numeric field of every stage's params in the table.
"""

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from stair.errors import ParamsError

T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """Allowed numbers: low <= x (low < x if `open_low`) and x <= high."""

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        return above and value <= self.high  # NaN fails both

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"


PROBABILITY = Range(0.0, 1.0)  # probabilities, shares and fractions
SHARE_ABOVE_ZERO = Range(0.0, 1.0, open_low=True)  # a share where 0 leaves nothing
POSITIVE = Range(0.0, open_low=True)  # counts, lengths, sizes, rates (an int must be >= 1)
NON_NEGATIVE = Range(0.0)  # seeds, counts that may be 0 (0 often means "off" or "all")
ANY = Range()

RANGES: dict[str, Range] = {
    **dict.fromkeys(["heldout_fraction", "benign_framed_share", "warmup_ratio", "dropout", "validation_share",
                     "relative_margin", "relative_good", "hard_threshold"], PROBABILITY),
    **dict.fromkeys(["top_p", "gpu_memory_utilization"], SHARE_ABOVE_ZERO),
    **dict.fromkeys([
        "batch_size", "concurrency", "vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
        "max_length", "max_record_chars", "iterations", "children", "rollouts", "max_depth", "max_step_tokens",
        "max_response_tokens", "concurrent_trees", "workers", "epochs", "grad_accum", "logging_steps",
        "learning_rate", "alpha", "max_tokens", "max_good_bad_ratio", "max_sft_per_prompt", "runs",
        "beam_expansions", "max_steps", "prm_batch_size", "max_new_tokens", "budgets", "beta", "k1", "k2",
        "processes", "machines",
    ], POSITIVE),
    **dict.fromkeys([
        "seed", "sft_math", "sft_harmful", "sft_benign", "seed_math", "seed_harmful", "seed_jailbreak",
        "seed_benign", "heldout_per_group", "temperature", "top_k", "c", "weight_decay", "r", "min_visits",
        "margin", "pair_margin", "pairwise_weight", "sft_weight", "per_suite", "limit", "gpus_per_worker",
    ], NON_NEGATIVE),
    "main_port": Range(1, 65535),
    "good_threshold": ANY,  # a reward value (absolute thresholds), which may be negative
}


def from_mapping(cls: type[T], mapping: dict[str, Any] | None, where: str) -> T:
    """Instantiate dataclass `cls` from `mapping` (nested dataclasses and tuples included).

    `where` is the dotted location used in error messages, e.g. 'params.yaml: sft'.
    """
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]} is not a parameter; valid keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in mapping.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = from_mapping(hint, value, f"{where}.{name}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            values[name] = tuple(value)
        elif hint is float and isinstance(value, str) and _is_number(value):
            values[name] = float(value)  # YAML 1.1 (PyYAML, DVC's -S) reads 1e-4, without a dot, as a string
        else:
            values[name] = value
        _check_type(values[name], hint, f"{where}.{name}")
        _check_range(name, values[name], f"{where}.{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ParamsError(f"{where}: {err}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_range(name: str, value: Any, where: str) -> None:
    allowed = RANGES.get(name)
    numbers = value if isinstance(value, tuple) else (value,)
    for number in numbers:
        if allowed is not None and isinstance(number, (int, float)) and not isinstance(number, bool):
            if number not in allowed:
                raise ParamsError(f"{where}={value!r} must be {allowed}")


def _check_type(value: Any, hint: Any, where: str) -> None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if not any(_matches(value, h) for h in typing.get_args(hint)):
            raise ParamsError(f"{where}={value!r} should be {hint}")
    elif not _matches(value, hint):
        raise ParamsError(f"{where}={value!r} should be of type {getattr(hint, '__name__', hint)}")
    elif typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        element = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        for index, item in enumerate(value if element is not None else ()):
            _check_type(item, element, f"{where}[{index}]")


def _matches(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint is Any or dataclasses.is_dataclass(hint):
        return True
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(value, origin)
