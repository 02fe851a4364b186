"""dvc.yaml lists the code each stage runs (its import closure), derived from the source."""

import copy
import shutil
from pathlib import Path

import yaml

from stair.deps import check, code_deps, main, write

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
        "stair/unused.py": "",
        "schemas/__init__.py": "",
        "schemas/rows.py": "",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    assert code_deps(tmp_path, "stages.job") == [
        "stages/job.py", "schemas", "stages/__init__.py", "stair/__init__.py", "stair/helper.py", "stair/lazy.py",
        "stair/pkg/__init__.py", "stair/pkg/leaf.py", "stair/sibling.py"]
