"""The code each pipeline stage runs, derived from the source: the `deps` that `dvc.yaml` must list.

A stage's code dependencies are the import closure of its entry point (`python -m stages.<name>`)
within the project: every `stair`, `stages` and `schemas` module it can import, at module level or
inside a function, and the packages' `__init__.py` files on the way, with the data file a module
keeps beside it under its own name (`stair/world/catalog.yaml` for `catalog.py`). `schemas/` is listed
as one folder (the artifact contracts every stage shares). A stage then re-runs when, and only when, code
it can execute changes. Other deps (artifact folders, data files) are not touched.

    python -m stair.deps --check    # exit 1, naming each missing or stale code dep
    python -m stair.deps --write    # rewrite the code deps of every stage in dvc.yaml
"""

import argparse
import ast
import re
import sys
from io import StringIO
from pathlib import Path

PACKAGES = ("stair", "stages", "schemas")
SCHEMAS = "schemas"
ENTRY = re.compile(r"python -m (stages\.\w+)")
MODULE_DATA = ".yaml"  # `x.yaml` beside `x.py` is data that module reads: code, for dvc


def module_file(root: Path, module: str) -> Path | None:
    """The source file of a project module (`stair.training.sft`), or None if it is not one."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module `path` (module `module`) names in an import statement, wherever the statement is.

    `from pkg import name` yields `pkg` and also `pkg.name`, which counts only if it is a submodule.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(root: Path, module: str) -> set[Path]:
    """Source files (relative to `root`) of `module` and of every project module it can import, transitively."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for name in _with_parents(current):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            path = module_file(root, name)
            if name in seen or path is None:
                continue
            seen.add(name)
            files.add(path.relative_to(root))
            if (data := path.with_suffix(MODULE_DATA)).is_file():
                files.add(data.relative_to(root))
            todo += sorted(imported_modules(path, name))
    return files


def code_deps(root: Path, module: str) -> list[str]:
    """The code deps of the stage whose entry point is `module`: entry file first, `schemas` as one folder."""
    entry = module_file(root, module)
    if entry is None:
        raise ValueError(f"{module}: no such module under {root}")
    paths = {p.as_posix() for p in import_closure(root, module)}
    paths = {SCHEMAS if p.startswith(f"{SCHEMAS}/") else p for p in paths} | {SCHEMAS}
    first = entry.relative_to(root).as_posix()
    return [first, *sorted(paths - {first})]


def is_code_dep(path: str) -> bool:
    """Whether a dvc.yaml dep is code (derived here) rather than data (kept as written)."""
    return path == SCHEMAS or (path.endswith((".py", MODULE_DATA)) and path.split("/")[0] in PACKAGES)


def stage_bodies(dvc: dict) -> dict[str, dict]:
    """Stage name -> its definition (the `do:` body of a foreach stage)."""
    return {name: stage.get("do", stage) for name, stage in dvc.get("stages", {}).items()}


def entry_module(name: str, body: dict) -> str:
    match = ENTRY.search(str(body.get("cmd", "")))
    if not match:
        raise ValueError(f"dvc.yaml: stage {name}: cmd does not run 'python -m stages.<name>'")
    return match.group(1)


def check(root: Path, dvc: dict) -> list[str]:
    """One line per code dep a stage of `dvc` (parsed dvc.yaml) misses or lists without importing it."""
    problems = []
    for name, body in stage_bodies(dvc).items():
        module = entry_module(name, body)
        wanted = set(code_deps(root, module))
        listed = {d for d in body.get("deps", []) if isinstance(d, str) and is_code_dep(d)}
        problems += [f"dvc.yaml: stage {name}: deps miss {path} ({module} imports it)"
                     for path in sorted(wanted - listed)]
        problems += [f"dvc.yaml: stage {name}: deps list {path}, which {module} no longer imports"
                     for path in sorted(listed - wanted)]
    return problems


def write(root: Path, dvc_file: Path) -> bool:
    """Rewrite each stage's code deps in `dvc_file` (data deps kept, in order, after them); True if it changed."""
    from ruamel.yaml import YAML  # dvc's own YAML library: keeps the file's layout and comments

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    text = dvc_file.read_text()
    dvc = yaml.load(text)
    for name, body in stage_bodies(dvc).items():
        data = [d for d in body.get("deps", []) if not (isinstance(d, str) and is_code_dep(d))]
        body["deps"] = [*code_deps(root, entry_module(name, body)), *data]
    out = StringIO()
    yaml.dump(dvc, out)
    if out.getvalue() == text:
        return False
    dvc_file.write_text(out.getvalue())
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stair.deps", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml misses or over-lists code deps")
    action.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    parser.add_argument("--root", type=Path, default=Path("."), help="the project root (default: here)")
    args = parser.parse_args(argv)
    dvc_file = args.root / "dvc.yaml"
    if args.write:
        print(f"{dvc_file}: {'rewritten' if write(args.root, dvc_file) else 'already up to date'}")
        return 0
    import yaml

    problems = check(args.root, yaml.safe_load(dvc_file.read_text()))
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print("run `python -m stair.deps --write` to regenerate them", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
