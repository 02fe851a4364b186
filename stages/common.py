"""What every stage entry point shares: its command line, reading its params section, logging, clean error exits."""

import argparse
import dataclasses
import functools
import logging
import signal
import sys
import typing
from pathlib import Path
from typing import TypeVar

import yaml

from stages.registry import SECTIONS, TOP_LEVEL, section_class
from stair.config import from_mapping
from stair.errors import ArtifactError, HubUnavailable, ParamsError
from stair.hub.refs import is_hub_ref

T = TypeVar("T")
PARAMS_FILE = Path("params.yaml")

log = logging.getLogger("stair")


def stage_args(doc: str, arguments: dict[str, str | tuple[type, str]]) -> argparse.Namespace:
    """The stage's command line as dvc.yaml's `cmd` writes it: `--name VALUE` for each of `arguments` (name -> help,
    a path; or (type, help)), all required, so every path a stage reads or writes is written in dvc.yaml only."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, spec in arguments.items():
        kind, text = spec if isinstance(spec, tuple) else (Path, spec)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, required=True, help=text,
                            metavar="PATH" if kind is Path else name.upper())
    return parser.parse_args()


def read_params() -> dict:
    try:
        params = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{PARAMS_FILE} not found; run stages from the repository root") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ParamsError(f"{PARAMS_FILE} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{PARAMS_FILE} should map section names to sections, got a {type(params).__name__}")
    return params


def load_section(section: str, cls: type[T]) -> tuple[T, dict]:
    """The `section` of params.yaml as dataclass `cls`, and the raw mapping (for manifests).

    Every `seed` field the section leaves unset (nested ones too) takes the top-level `seed`, so one
    param re-seeds the whole pipeline (`dvc exp run -S seed=1`); a section's own `seed` overrides it.
    """
    params = read_params()
    check_params(params)
    raw = params.get(section) or {}
    if isinstance(raw, dict):
        raw = with_seed(cls, raw, params.get("seed", 0))
    return from_mapping(cls, raw, f"{PARAMS_FILE}: {section}"), raw


def check_params(params: dict) -> None:
    """Every section of params.yaml against its dataclass, before a stage does any work: a typo in any section
    fails the first stage that runs, naming the key (stages/registry.py lists the sections)."""
    unknown = sorted(set(params) - TOP_LEVEL)
    if unknown:
        raise ParamsError(f"{PARAMS_FILE}: {unknown[0]} is not a section; sections: {', '.join(sorted(TOP_LEVEL))}")
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParamsError(f"{PARAMS_FILE}: seed={seed!r} should be an integer")
    for section in SECTIONS:
        cls, raw = section_class(section), params.get(section) or {}
        from_mapping(cls, with_seed(cls, raw, seed) if isinstance(raw, dict) else raw, f"{PARAMS_FILE}: {section}")


def with_seed(cls: type, raw: dict, seed: int) -> dict:
    """`raw` with `seed` filled in for every seed field of dataclass `cls` (recursively) it leaves unset."""
    hints = typing.get_type_hints(cls)
    filled = dict(raw)
    for field in dataclasses.fields(cls):
        if field.name == "seed":
            filled.setdefault("seed", seed)
        elif dataclasses.is_dataclass(hints[field.name]) and isinstance(filled.get(field.name, {}), dict):
            filled[field.name] = with_seed(hints[field.name], filled.get(field.name, {}), seed)
    return filled


def raw_sections(*names: str) -> dict:
    """Sections of params.yaml as plain mappings, for stages that only report them."""
    params = read_params()
    return {name: params.get(name) or {} for name in names}


def loop_items() -> dict:
    """The SI-MCTS/DPO iterations, listed once in params.yaml (`loop`: iteration -> policy and out)."""
    items = read_params().get("loop") or {}
    # Keys must be the strings "1".."K": DVC silently drops foreach stages over integer keys.
    if (not isinstance(items, dict) or list(items) != [str(k) for k in range(1, len(items) + 1)]
            or not all(isinstance(item, dict) and isinstance(item.get("policy"), str) and isinstance(item.get("out"), str)
                       for item in items.values())):
        raise ParamsError(f'{PARAMS_FILE}: loop must map "1".."K" (quoted) to {{policy, out}}, got {items!r}')
    return items


def loop_models() -> dict[str, Path]:
    """The loop's models in order, by the name every artifact gives them: `sft` (iteration 1's policy), then
    `dpo_<k>` (iteration k's out); the last is the final policy that prm and search start from."""
    items = loop_items()
    if not items:
        raise ParamsError(f'{PARAMS_FILE}: loop is empty; it must map "1".."K" (quoted) to {{policy, out}}')
    return {"sft": Path(items["1"]["policy"]), **{f"dpo_{k}": Path(item["out"]) for k, item in items.items()}}


def tracked_input(source: str, key: str, inputs: Path, also: Path | None = None) -> None:
    """Refuse a local file DVC would not see change: it must lie under `inputs` (data/inputs/, a dep of the
    stages that read such files; DVC can't depend on a path a param may leave empty), or `also`.

    `source` "" (unused) and Hub ids (`hub:...`, pinned by their revision in params) pass.
    """
    if not source or is_hub_ref(source):
        return
    path = Path(source).resolve()
    if not any(path.is_relative_to(folder.resolve()) for folder in (inputs, *([also] if also else []))):
        raise ParamsError(f"{PARAMS_FILE}: {key}: {source} is outside {inputs}/, the folder dvc.yaml tracks, so "
                          f"editing it would not re-run the stage; move the file into {inputs}/")


def stage_main(func):
    """Run a stage with logging set up; known bad-input errors exit 1 with one clear message."""

    @functools.wraps(func)
    def wrapper() -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        # A TERM (a kill, a cancelled job) unwinds like Ctrl-C, so temporary folders are removed on the way out.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        try:
            func()
        except (ArtifactError, ParamsError, HubUnavailable) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)

    return wrapper
