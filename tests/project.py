"""A throwaway git + DVC copy of this repository, for the end-to-end tests that run `dvc repro` in it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GENERATED = ("metrics/", "plots/", "timings/", "data/", "models/")


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def environment() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
           "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # stages run this venv's python
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=environment(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def stage_argv(stage: str, key: str | None = None, **values: str) -> list[str]:
    """The arguments dvc.yaml's `cmd` gives `stage` (iteration `key` of a foreach stage, its item from params.yaml's
    loop), with `values` replacing some (`out="models/x"`), for tests that run a stage themselves:
    `sys.argv = ["stage", *stage_argv("search")]`."""
    body = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    cmd = body.get("do", body)["cmd"]
    if key is not None:
        item = yaml.safe_load((REPO / "params.yaml").read_text())["loop"][key]
        cmd = cmd.replace("${key}", key).replace("${item.policy}", item["policy"]).replace("${item.out}", item["out"])
    words = cmd.split()
    argv = words[words.index("-m") + 2:]
    for name, value in values.items():
        argv[argv.index(f"--{name}") + 1] = value
    return argv


def copy_repo(root: Path, params: dict | None = None) -> Path:
    """The tracked and new files of the repo in `root` (no outputs, no dvc.lock), with `params` merged into
    params.yaml (as YAML, comments dropped) if given, committed to a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if name == "dvc.lock" or (name.startswith(GENERATED) and not name.startswith("data/inputs/")):
            continue
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    if params:
        merged = merge(yaml.safe_load((REPO / "params.yaml").read_text()), params)
        (root / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    run(["git", "init", "-q"], root)
    commit(root, "copy")
    return root


def commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, "--allow-empty"], root)
