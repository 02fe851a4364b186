"""Build a params dataclass from a plain mapping, naming any bad key and what would be valid."""

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ParamsError(ValueError):
    pass


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
        else:
            values[name] = value
        _check_type(values[name], hint, f"{where}.{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ParamsError(f"{where}: {err}") from None


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
