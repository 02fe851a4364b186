"""Profiles: named sets of params (profiles/<name>.yaml) written into params.yaml in one step.

    stair profile paper-llama-3.1-8b      # then: dvc repro, or dvc exp run -S ... on top

A profile is a partial params.yaml. `extends: [other, ...]` applies other profiles first. Mappings
merge key by key, and a profile may only set keys params.yaml has, so a typo fails here, not an hour
into a run; the free-form mappings (`loop`, column maps, eval suites, publish configs) are replaced
whole. params.yaml keeps its comments (DVC's own `-S` edits it the same way), so `git diff params.yaml`
shows exactly what a profile changed and `git checkout params.yaml` undoes it.
"""

from pathlib import Path

from stair.config import ParamsError

PROFILES = Path("profiles")
PARAMS = Path("params.yaml")  # the one library module that touches params.yaml: it writes it, never reads a value
# Mappings whose keys are the user's (iterations, columns, suites, configs): a profile replaces them whole.
FREE_FORM = {("loop",), ("data", "sft_columns"), ("data", "prompt_columns"), ("eval", "suites"),
             ("publish", "configs")}


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments and key order survive
    yaml.width = 4096
    yaml.preserve_quotes = True
    yaml.representer.add_representer(  # `null`, as written, rather than ruamel's empty value
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null"))
    yaml.representer.add_representer(float, _represent_float)
    return yaml


def _represent_float(representer, value: float):
    """A float that PyYAML and DVC read back as a float: `1e-05` would be a string to them (YAML 1.1 wants a dot)."""
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def available(folder: Path = PROFILES) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_profile(name: str, folder: Path = PROFILES, _seen: tuple[str, ...] = ()) -> dict:
    """The profile's settings with everything it extends applied first (later wins)."""
    import yaml

    path = folder / f"{name}.yaml"
    if name in _seen:
        raise ParamsError(f"{path}: extends itself through {' -> '.join([*_seen, name])}")
    if not path.is_file():
        raise ParamsError(f"no profile {name!r} in {folder}/; profiles: {', '.join(available(folder)) or 'none'}")
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(settings, dict):
        raise ParamsError(f"{path}: expected a mapping of params, got {type(settings).__name__}")
    parents = settings.pop("extends", [])
    parents = [parents] if isinstance(parents, str) else parents
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ParamsError(f"{path}: extends should name a profile or list profiles, got {parents!r}")
    merged: dict = {}
    for parent in parents:
        merged = merge(merged, load_profile(parent, folder, (*_seen, name)))
    return merge(merged, settings)


def merge(base: dict, override: dict, at: tuple[str, ...] = ()) -> dict:
    """`override` on top of `base`, recursively; free-form mappings are replaced whole."""
    out = dict(base)
    for key, value in override.items():
        here = (*at, str(key))
        if isinstance(value, dict) and isinstance(out.get(key), dict) and here not in FREE_FORM:
            out[key] = merge(out[key], value, here)
        else:
            out[key] = value
    return out


def apply_profile(settings: dict, params_file: Path) -> list[str]:
    """Write `settings` into `params_file` in place; returns 'key: old -> new' for every value it changed."""
    from ruamel.yaml import YAMLError

    yaml = _yaml()
    try:
        params = yaml.load(params_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{params_file} not found (run stair profile from the repository root, or give --params)") from None
    except (YAMLError, UnicodeDecodeError) as err:
        raise ParamsError(f"{params_file} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{params_file} should map section names to sections")
    changes: list[str] = []
    _set(params, settings, (), changes, params_file)
    tmp = params_file.with_name(params_file.name + ".tmp")
    with tmp.open("w") as handle:
        yaml.dump(params, handle)
    tmp.replace(params_file)
    return changes


def _set(target, settings: dict, at: tuple[str, ...], changes: list[str], params_file: Path) -> None:
    for key, value in settings.items():
        here = (*at, str(key))
        dotted = ".".join(here)
        if key not in target:
            raise ParamsError(f"{params_file} has no {dotted}: the profile sets a key the pipeline does not read "
                              f"(misspelt, or params.yaml is from another version)")
        if isinstance(value, dict) and here not in FREE_FORM:
            if not isinstance(target[key], dict):
                raise ParamsError(f"{dotted} is {target[key]!r} in {params_file}, not a mapping the profile can merge")
            _set(target[key], value, here, changes, params_file)
        elif _plain(target[key]) != value:
            changes.append(f"{dotted}: {_plain(target[key])!r} -> {value!r}")
            target[key] = value


def _plain(value):
    """A ruamel value as plain Python, for comparing and printing."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
