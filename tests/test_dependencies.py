"""dvc.yaml lists what each stage reads: the code it runs (its import closure) and the user's data files."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stair.deps import check, code_deps, main, write
from stair.store import read_manifest

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_stage_lists_exactly_its_import_closure() -> None:
    assert check(REPO, DVC) == []


def test_a_removed_dep_and_a_stale_dep_are_named() -> None:
    broken = copy.deepcopy(DVC)
    deps = broken["stages"]["pairs"]["do"]["deps"]
    deps.remove("stair/reward.py")
    deps.append("stair/search.py")
    assert check(REPO, broken) == [
        "dvc.yaml: stage pairs: deps miss stair/reward.py (stages.pairs imports it)",
        "dvc.yaml: stage pairs: deps list stair/search.py, which stages.pairs no longer imports",
    ]


@pytest.mark.slow  # starts Ray / copies the repo: seconds, kept out of the fast tier
def test_the_command_line_check_fails_on_a_removed_dep_and_write_repairs_it(tmp_path: Path, capsys) -> None:
    for name in ("stair", "stages", "schemas"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    text = (REPO / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(text.replace("      - stair/checkpoint.py\n", "", 1))
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert "stage mcts: deps miss stair/checkpoint.py" in capsys.readouterr().err
    assert write(tmp_path, tmp_path / "dvc.yaml")
    assert (tmp_path / "dvc.yaml").read_text() == text  # layout, data deps and order as before
    assert main(["--check", "--root", str(tmp_path)]) == 0


def test_the_closure_follows_function_level_relative_and_submodule_imports(tmp_path: Path) -> None:
    files = {
        "stages/__init__.py": "",
        "stages/job.py": "import json\n\ndef main():\n    from stair.lazy import run\n    run()\n",
        "stair/__init__.py": "",
        "stair/lazy.py": "from stair import helper\nfrom . import sibling\nfrom stair.pkg import leaf\n",
        "stair/helper.py": "from schemas.rows import Row\n",
        "stair/sibling.py": "",
        "stair/pkg/__init__.py": "",
        "stair/pkg/leaf.py": "import torch\n",
        "stair/pkg/leaf.yaml": "data: the module beside it reads this\n",
        "stair/unused.py": "",
        "schemas/__init__.py": "",
        "schemas/rows.py": "",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    assert code_deps(tmp_path, "stages.job") == [
        "stages/job.py", "schemas", "stages/__init__.py", "stair/__init__.py", "stair/helper.py", "stair/lazy.py",
        "stair/pkg/__init__.py", "stair/pkg/leaf.py", "stair/pkg/leaf.yaml", "stair/sibling.py"]


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # stages run this venv's python
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def changed_stages(project: Path) -> set[str]:
    return set(json.loads(run([sys.executable, "-m", "dvc", "status", "--json", "data"], project)))


@pytest.mark.slow
def test_editing_a_user_prompts_file_reruns_data(tmp_path: Path) -> None:
    """Local data files live in data/inputs/, a dep of `data`: an edit there re-runs it; so does a Hub revision."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("stair/", "stages/", "schemas/", "data/inputs/")) or name in ("dvc.yaml", "params.yaml"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tmp_path / name)
    inputs = tmp_path / "data/inputs"
    (inputs / "sft.jsonl").write_text("".join(json.dumps(
        {"prompt": f"What is {i} + 1?", "response": f"<|Output|>Final Answer:\n{i + 1}<|/Output|>"}) + "\n"
        for i in range(8)))
    prompts = [json.dumps({"question": f"What is {i} + 2?", "type": "helpfulness", "ground_truth": str(i + 2)})
               for i in range(40)]
    (inputs / "prompts.jsonl").write_text("\n".join(prompts) + "\n")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["data"].update(source="files", sft="data/inputs/sft.jsonl", prompts="data/inputs/prompts.jsonl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "user data"],
                [sys.executable, "-m", "dvc", "init", "-q"], [sys.executable, "-m", "dvc", "repro", "data"]):
        run(cmd, tmp_path)
    assert read_manifest(tmp_path / "data/prompts").rows == 40
    assert changed_stages(tmp_path) == set()

    (inputs / "prompts.jsonl").write_text("\n".join(prompts[:3]) + "\n")  # the file loses 37 of its 40 rows
    assert changed_stages(tmp_path) == {"data"}
    run([sys.executable, "-m", "dvc", "repro", "data"], tmp_path)
    assert read_manifest(tmp_path / "data/prompts").rows == 3
    assert changed_stages(tmp_path) == set()

    params["data"]["prompts"] = "hub:someone/prompts@" + "0" * 40  # a Hub source pinned to a revision
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert changed_stages(tmp_path) == {"data"}


def test_a_local_data_file_outside_data_inputs_is_refused(tmp_path: Path, monkeypatch) -> None:
    from stages.common import tracked_input
    from stair.config import ParamsError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/inputs").mkdir(parents=True)
    inputs = Path("data/inputs")
    tracked_input("data/inputs/prompts.jsonl", "data.prompts", inputs)
    tracked_input("hub:someone/prompts@main", "data.prompts", inputs)
    tracked_input("", "data.heldout", inputs)
    with pytest.raises(ParamsError, match=r"data\.prompts: my\.jsonl is outside data/inputs/"):
        tracked_input("my.jsonl", "data.prompts", inputs)
    tracked_input(str(tmp_path / "shipped/x.csv"), "eval.suites.x.path", inputs, also=tmp_path / "shipped")
