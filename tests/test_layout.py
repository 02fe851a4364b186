"""The project's shape: library never imports stages; params.yaml, the params dataclasses and dvc.yaml agree."""

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from stages.base import BaseParams
from stages.dpo import DPOStageParams
from stair.config import from_mapping
from stair.data import DataParams
from stair.evaluation import EvalParams, HeldoutParams
from stair.generation import BackendParams
from stair.hub.publish import PublishParams
from stair.judges import JudgeParams
from stair.launch import DistributedParams
from stair.mcts import MCTSParams
from stair.pairs import PairParams
from stair.prm import LabelParams
from stair.reward import RewardParams
from stair.search import SearchParams
from stair.training.prm import PRMParams
from stair.training.sft import SFTParams

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
SECTIONS = {"data": DataParams, "base": BaseParams, "sft": SFTParams, "backend": BackendParams,
            "reward": RewardParams, "judges": JudgeParams, "mcts": MCTSParams, "pairs": PairParams,
            "dpo": DPOStageParams, "prm_labels": LabelParams, "prm": PRMParams, "search": SearchParams,
            "heldout": HeldoutParams, "eval": EvalParams, "publish": PublishParams,
            "distributed": DistributedParams}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_library_never_imports_stages() -> None:
    for path in (REPO / "stair").rglob("*.py"):
        assert "stages" not in imports(path), path
    for path in (REPO / "schemas").rglob("*.py"):
        assert not imports(path) & {"stages", "stair"}, path


def test_only_stages_read_params_yaml() -> None:
    writer = REPO / "stair/profiles.py"  # `stair profile` writes a profile into params.yaml; it reads no value
    for path in [*(REPO / "stair").rglob("*.py"), *(REPO / "schemas").rglob("*.py")]:
        if path == writer:
            continue
        literals = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        assert "params.yaml" not in literals, path


def fields(cls) -> dict:
    return {f.name: f for f in dataclasses.fields(cls)}


def check_complete(cls, section: dict, where: str) -> None:
    # `seed` fields come from the top-level seed (stages.common.load_section), never from a section.
    expected = set(fields(cls)) - {"seed"}
    assert set(section) == expected, f"{where}: params.yaml keys differ from {cls.__name__}"
    for name, field in fields(cls).items():
        if dataclasses.is_dataclass(field.type) and isinstance(field.type, type):
            check_complete(field.type, section[name], f"{where}.{name}")


def seeded(cls) -> bool:
    """Whether dataclass `cls` has a seed field, nested ones included."""
    return any(f.name == "seed" or (dataclasses.is_dataclass(f.type) and isinstance(f.type, type) and seeded(f.type))
               for f in dataclasses.fields(cls))


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_params_section_is_its_dataclass_in_full(section: str) -> None:
    from_mapping(SECTIONS[section], PARAMS[section], f"params.yaml: {section}")
    if section != "data":  # data.world lists only the sizes; the rest keep their defaults
        check_complete(SECTIONS[section], PARAMS[section], section)


def stage_sections(module: str) -> set[str]:
    text = (REPO / "stages" / f"{module}.py").read_text()
    sections = set(re.findall(r'load_section\("(\w+)"', text))
    if any(seeded(SECTIONS[s]) for s in sections):
        sections.add("seed")
    for names in re.findall(r"raw_sections\(([^)]*)\)", text):
        sections |= set(re.findall(r'"(\w+)"', names))
    if "loop_items()" in text or "loop_models()" in text:
        sections.add("loop")
    return sections


def test_dvc_yaml_lists_the_params_each_stage_reads() -> None:
    for name, stage in DVC["stages"].items():
        body = stage.get("do", stage)
        module = re.search(r"-m stages\.(\w+)", body["cmd"]).group(1)
        assert set(body.get("params", [])) == stage_sections(module), name
        assert f"stages/{module}.py" in body["deps"], name


def cmd_arguments(cmd: str) -> dict[str, str]:
    """`--name value` pairs of a stage's cmd, by name."""
    words = cmd.split()
    return {word[2:]: value for word, value in zip(words, words[1:]) if word.startswith("--")}


def declared(body: dict, *kinds: str) -> set[str]:
    return {next(iter(entry)) if isinstance(entry, dict) else entry for kind in kinds for entry in body.get(kind, [])}


@pytest.mark.parametrize("name", sorted(DVC["stages"]))
def test_paths_are_written_in_dvc_yaml_only(name: str) -> None:
    """A stage takes every path it reads or writes from its cmd (stages.common.stage_args, no default in code): the
    cmd passes exactly the stage's arguments, each path it names is a dep or an out, and each out, metric and plot
    is a path it names, so the file the stage writes is the one dvc.yaml tracks."""
    import importlib

    body = DVC["stages"][name].get("do", DVC["stages"][name])
    module = importlib.import_module(re.search(r"-m (stages\.\w+)", body["cmd"]).group(1))
    arguments, expected = cmd_arguments(body["cmd"]), getattr(module, "ARGS", {})
    assert set(arguments) == {key.replace("_", "-") for key in expected}, name
    paths = {arguments[key.replace("_", "-")] for key, spec in expected.items() if not isinstance(spec, tuple)}
    assert paths <= declared(body, "deps", "outs", "metrics", "plots"), (name, paths - declared(body, "deps", "outs",
                                                                                               "metrics", "plots"))
    written = declared(body, "outs", "metrics", "plots")
    if name == "publish":  # it writes its dry-run folders to publish.out, a param, and reads the folders params name
        assert not expected and written == {"hub"}
    else:
        assert written <= paths, (name, written - paths)


@pytest.mark.parametrize("module", sorted(p.stem for p in (REPO / "stages").glob("*.py")
                                          if "stage_args(__doc__, ARGS)" in p.read_text()))
def test_stage_help_shows_its_command_and_arguments(module: str, monkeypatch, capsys) -> None:
    import importlib

    stage = importlib.import_module(f"stages.{module}")
    monkeypatch.setattr("sys.argv", [module, "--help"])
    with pytest.raises(SystemExit) as exit_:
        stage.main()
    shown = capsys.readouterr().out
    assert exit_.value.code == 0 and f"python -m stages.{module} --" in shown
    assert all(f"--{key.replace('_', '-')}" in shown for key in stage.ARGS)


def test_the_loop_models_are_named_once(tmp_path: Path, monkeypatch) -> None:
    from stages.common import loop_models
    from stair.errors import ParamsError

    monkeypatch.chdir(tmp_path)
    loop = {"1": {"policy": "models/sft", "out": "models/dpo/1"}, "2": {"policy": "models/dpo/1", "out": "m/last"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"loop": loop}))
    assert loop_models() == {"sft": Path("models/sft"), "dpo_1": Path("models/dpo/1"), "dpo_2": Path("m/last")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"loop": {}}))
    with pytest.raises(ParamsError, match="loop is empty"):
        loop_models()


def test_one_seed_fills_every_seed_field_unless_a_section_sets_its_own() -> None:
    from stages.common import with_seed

    filled = from_mapping(DataParams, with_seed(DataParams, {"world": {"sft_math": 3}}, 7), "data")
    assert (filled.seed, filled.world.seed, filled.world.sft_math) == (7, 7, 3)
    own = from_mapping(SFTParams, with_seed(SFTParams, {"seed": 2}, 7), "sft")
    assert own.seed == 2
    assert isinstance(PARAMS["seed"], int)


def test_loop_keys_are_quoted_iterations() -> None:
    assert list(PARAMS["loop"]) == [str(k) for k in range(1, len(PARAMS["loop"]) + 1)]
    for key, item in PARAMS["loop"].items():
        assert item["out"] == f"models/dpo/{key}"  # prm and search depend on the folder models/dpo
        assert item["policy"] == ("models/sft" if key == "1" else f"models/dpo/{int(key) - 1}")


def test_timings_are_plain_uncached_outs_and_publish_keeps_no_cached_copy() -> None:
    """Wall-clock numbers stay out of `dvc metrics`; the published folder is not a second cached dataset copy."""
    timings = {}
    for name, stage in DVC["stages"].items():
        body = stage.get("do", stage)
        assert not any(str(next(iter(m))).startswith("timings/") for m in body.get("metrics", [])), name
        for out in body.get("outs", []):
            if isinstance(out, dict) and next(iter(out)).startswith("timings/"):
                timings[name] = out
    assert set(timings) == {"sft", "mcts", "dpo", "prm"}
    assert all(next(iter(out.values())) == {"cache": False} for out in timings.values())
    assert DVC["stages"]["publish"]["outs"] == [{"hub": {"cache": False}}]
