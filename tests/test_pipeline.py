"""End to end: the real pipeline through `dvc repro` on a micro configuration, in a copy of the repo.

One module-scoped run (K = 3 as in the default, tiny sizes; about two minutes on 2 CPU cores) feeds
every test here: artifacts and their
contracts, tree invariants on the real nodes artifact, SQL over artifacts, what a param change
re-runs, `dvc exp run`, and killing SI-MCTS mid-run.
"""

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from schemas import EvalRecord, PRMExample, SeedPrompt, SFTExample, StepPair, TreeNode
from stair.checkpoint import KILL_AFTER_TREES
from stair.store import read_artifact, read_manifest
from tests.project import copy_repo, environment, run, stage_argv

pytestmark = pytest.mark.slow

MICRO = {
    "data": {"world": {"sft_math": 48, "sft_harmful": 32, "sft_benign": 32, "seed_math": 2, "seed_harmful": 1,
                       "seed_jailbreak": 3, "seed_benign": 2, "heldout_per_group": 3}},
    "base": {"tiny": {"vocab_size": 600, "hidden_size": 64, "intermediate_size": 128, "num_layers": 2,
                      "num_heads": 2}},
    "sft": {"epochs": 8.0, "batch_size": 16, "logging_steps": 2},  # enough for some well-formed answers
    # Iterations enough to go below the root's children: sibling pairs need values that differ.
    "mcts": {"iterations": 8, "max_depth": 4, "concurrent_trees": 3, "max_step_tokens": 40,
             "max_response_tokens": 120},
    "dpo": {"epochs": 1.0, "batch_size": 8, "logging_steps": 2},
    "prm": {"epochs": 1.0, "batch_size": 8, "logging_steps": 2},
    "search": {"budgets": [2], "per_suite": 2, "max_steps": 3, "max_step_tokens": 40, "max_response_tokens": 120},
    "eval": {"suites": {"xstest": {"limit": 4}, "advbench": {"limit": 2, "jailbreaks": ["base64"]},
                        "gsm8k": {"limit": 2}}, "max_new_tokens": 120},
}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh git + DVC copy of the repo with micro params, after a full `dvc repro`."""
    root = copy_repo(tmp_path_factory.mktemp("micro"), MICRO)
    run([sys.executable, "-m", "dvc", "repro"], root)
    return root


def test_every_stage_wrote_its_artifacts(project: Path) -> None:
    for folder, row_type in [("data/prompts", SeedPrompt), ("data/sft", SFTExample), ("data/nodes/1", TreeNode),
                             ("data/nodes/2", TreeNode), ("data/pairs/1", StepPair), ("data/heldout/sft", EvalRecord),
                             ("data/heldout/dpo_3", EvalRecord)]:
        rows = read_artifact(project / folder, row_type)
        manifest = read_manifest(project / folder)
        assert manifest.rows == len(rows) and manifest.row_type == row_type.__name__
    for model in ("base", "sft", "dpo/1", "dpo/2", "dpo/3", "prm"):
        assert (project / "models" / model / "model.safetensors").exists()
        assert (project / "models" / model / "tokenizer.json").exists()
    metrics = run([sys.executable, "-m", "dvc", "metrics", "show"], project).stdout
    assert "format_ok_rate" in metrics and "heldout/dpo_3.json" in metrics


def test_tree_invariants_on_the_real_artifact(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())["mcts"]
    for iteration in (1, 2, 3):
        rows = read_artifact(project / f"data/nodes/{iteration}", TreeNode)
        by_key = {(r.tree_id, r.node_id): r for r in rows}
        children: dict = {}
        for row in rows:
            if row.parent_id is not None:
                children.setdefault((row.tree_id, row.parent_id), []).append(row)
        for row in rows:
            kids = children.get((row.tree_id, row.node_id), [])
            assert row.parent_id is None or (row.tree_id, row.parent_id) in by_key
            assert row.depth <= params["max_depth"]
            assert len(kids) <= params["children"]
            assert row.visits == row.evaluations + sum(k.visits for k in kids)
            assert -3.0 <= row.value <= 3.0
            assert row.iteration == iteration
            if row.parent_id is not None and not row.terminal:  # evaluated by a rollout, which is kept
                # (its text may be empty: a policy can end the answer at once, judged as it stands)
                assert row.rollout_reward is not None and -3.0 <= row.rollout_reward <= 3.0


def test_prm_labels_hold_tree_steps_and_completed_rollouts(project: Path) -> None:
    examples = read_artifact(project / "data/prm_labels", PRMExample)
    assert {e.source for e in examples} == {"node", "rollout"}
    for e in examples:
        if e.source == "rollout":
            assert e.steps[-1].rstrip().endswith("<|/Output|>") and e.visits == 1
    prm = json.loads((project / "metrics/prm.json").read_text())
    assert prm["paths"] > 0 and 0.0 <= prm["validation_sibling_accuracy"] <= 1.0


def test_sql_over_artifacts(project: Path, capsys) -> None:
    from stair.cli import main

    assert main(["query", "--root", str(project / "data"), "--format", "csv",
                 "select kind, count(*) as n from prompts group by kind order by kind"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "kind,n" and out[1].startswith("helpfulness,") and out[2].startswith("safety,")
    assert main(["query", "--root", str(project / "data"), "select count(*) from nodes"]) == 0


def test_an_sft_param_change_reruns_sft_and_downstream_only(project: Path) -> None:
    params_file = project / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["sft"]["learning_rate"] = 0.001
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = run([sys.executable, "-m", "dvc", "status"], project).stdout
    finally:
        params_file.write_text(original)
    changed = {line.rstrip(":") for line in status.splitlines() if line and not line.startswith((" ", "\t"))}
    assert "sft" in changed
    assert not changed & {"data", "base"}


def test_dvc_exp_run_sets_a_param_and_exp_show_lists_it(project: Path) -> None:
    # --temp: the experiment runs outside the workspace, so later tests still see the main run.
    run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "sft", "-S", "sft.learning_rate=0.003", "-n", "lr3"],
        project)
    shown = run([sys.executable, "-m", "dvc", "exp", "show", "--no-pager", "--csv"], project).stdout
    assert "lr3" in shown and "0.003" in shown


def test_killed_search_resumes_and_reruns_are_identical(project: Path) -> None:
    nodes = project / "data/nodes/1/data.parquet"
    first = md5(nodes)
    command = [sys.executable, "-m", "stages.mcts", *stage_argv("mcts", "1")]
    run(command, project)
    assert md5(nodes) == first  # same params and seed: the same artifact, byte for byte

    checkpoint = project / "checkpoints/mcts_1/trees.jsonl"
    killed = subprocess.run(command, cwd=project, env={**environment(), KILL_AFTER_TREES: "2"},
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = checkpoint.read_text().splitlines()
    assert md5(nodes) == first  # the kill left the previous artifact whole, never a partial one

    run(command, project)
    rows = read_artifact(project / "data/nodes/1", TreeNode)
    for line in saved:
        tree = [TreeNode.model_validate(r) for r in json.loads(line)]
        assert [r for r in rows if r.tree_id == tree[0].tree_id] == tree  # finished trees kept as they were
    seeds = [p for p in read_artifact(project / "data/prompts", SeedPrompt) if p.split == "iter_1"]
    assert len({r.tree_id for r in rows}) == len(seeds)
    assert sum(r.parent_id is None for r in rows) == len(seeds)
    assert not checkpoint.parent.exists()  # removed once the artifact is complete


def test_dry_run_publish_folder_round_trips(project: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    from stair.cli import main
    from stair.hub.cards import read_card_metadata

    folder = project / "hub" / "stair-data"
    configs = [c["config_name"] for c in read_card_metadata(folder)["configs"]]
    assert {"sft", "prompts", "trees_1", "trees_2", "trees_3", "prm_labels", "eval"} <= set(configs)
    pairs = published_pairs(project)
    assert pairs, "the micro run found no preference pairs in any iteration"
    for config, artifact in [("sft", "data/sft"), ("trees_2", "data/nodes/2"), ("eval", "data/eval"),
                             (f"pairs_{pairs[0]}", f"data/pairs/{pairs[0]}")]:
        # A fresh cache: `datasets` may serve an earlier run's copy of a folder at the same path.
        loaded = load_dataset(str(folder), config, split="train", cache_dir=str(tmp_path / "datasets"))
        assert loaded.to_list() == [r.model_dump() for r in read_artifact(project / artifact)]
    assert main(["pull", str(folder), "--config", f"pairs_{pairs[0]}", "--out", str(tmp_path / "pulled")]) == 0
    assert read_artifact(tmp_path / "pulled") == read_artifact(project / f"data/pairs/{pairs[0]}")


def published_pairs(project: Path) -> list[int]:
    """Iterations whose pairs were published (an iteration whose trees gave no pair has none to publish)."""
    return [k for k in (1, 2, 3) if read_manifest(project / f"data/pairs/{k}").rows]


def test_eval_and_report(project: Path) -> None:
    metrics = json.loads((project / "metrics/eval.json").read_text())
    assert {"sft", "dpo_1", "dpo_2", "dpo_3"} < set(metrics)
    (searched,) = set(metrics) - {"sft", "dpo_1", "dpo_2", "dpo_3"}  # the final model under the best search
    assert searched.startswith("dpo_3+") and "xstest" in metrics[searched]
    suites = set(metrics["dpo_3"])
    assert {"heldout_jailbreak", "heldout_math", "all"} <= suites
    # The benchmark copies ship with the project: a clone with nothing beside it evaluates them offline.
    assert {"xstest", "advbench", "advbench_jailbreak", "gsm8k"} <= suites
    assert "goodness_refusal" in metrics["dpo_3"]["advbench"] and "accuracy" in metrics["dpo_3"]["gsm8k"]
    assert not (project.parent / "shared").exists()
    report = (project / "reports/report.md").read_text()
    assert "| dpo_3 |" in report and "Test-time scaling" in report
    assert (project / "reports/iterations.png").stat().st_size > 1000
    assert (project / "reports/search.png").stat().st_size > 1000
    search = json.loads((project / "metrics/search.json").read_text())
    assert {"greedy@1", "bon@2", "beam@2"} == set(search)
    assert {r.model for r in read_artifact(project / "data/search", EvalRecord)} == {"dpo_3"}


def test_dpo_trains_from_published_pairs(project: Path) -> None:
    """dpo.pairs pointing at a published folder (what `hub:` pulls, offline): the stage trains on its rows."""
    params_file = project / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["dpo"]["pairs"] = "hub/stair-data:pairs_{it}"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    it = published_pairs(project)[0]
    # The stage writes the shared run's metrics/timings of iteration `it`: put them back for the later tests.
    shared = {f: f.read_bytes() for f in (project / f"metrics/dpo/{it}.json", project / f"timings/dpo/{it}.json")}
    try:
        run([sys.executable, "-m", "stages.dpo", *stage_argv("dpo", str(it), policy="models/sft",
                                                            out="models/dpo_from_hub")], project)
        metrics = json.loads((project / f"metrics/dpo/{it}.json").read_text())
    finally:
        params_file.write_text(original)
        for file, content in shared.items():
            file.write_bytes(content)
    assert metrics["pairs"] == len(read_artifact(project / f"data/pairs/{it}")) and "pairs_source" in metrics
    assert metrics["steps"] > 0
    assert (project / "models/dpo_from_hub/model.safetensors").exists()




def test_changing_a_module_reruns_exactly_the_stages_that_import_it(project: Path) -> None:
    from stair.deps import code_deps, entry_module

    module = project / "stair/pairs.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit\n")
    try:
        status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], project).stdout)
    finally:
        module.write_text(original)
    # Earlier tests rewrite some outputs by hand (changed outs); only changed deps matter here.
    rerun = {stage for stage, entries in status.items() for entry in entries
             if isinstance(entry, dict) and "stair/pairs.py" in entry.get("changed deps", {})}
    loop = yaml.safe_load((project / "params.yaml").read_text())["loop"]
    importers = set()  # from the source: the stages whose entry point can import stair.pairs
    for name, stage in yaml.safe_load((project / "dvc.yaml").read_text())["stages"].items():
        if "stair/pairs.py" in code_deps(project, entry_module(name, stage.get("do", stage))):
            importers |= {f"{name}@{k}" for k in loop} if "foreach" in stage else {name}
    assert {"pairs@1", "prm_labels", "prm", "search", "eval"} <= importers and "sft" not in importers
    assert rerun == importers


def test_rerunning_with_the_same_params_changes_no_metric(project: Path) -> None:
    """Wall-clock numbers live in timings/ (plain outs), so `dvc metrics diff` moves only with results."""
    assert "runtime_s" in (project / "timings/sft.json").read_text()
    assert "runtime_s" not in (project / "metrics/sft.json").read_text()
    assert "nodes_per_s" in (project / "timings/mcts/1.json").read_text()
    assert "nodes_per_s" not in (project / "metrics/mcts/1.json").read_text()
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "the micro run"], project)
    rerun = run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "sft", "mcts@1"], project).stdout
    assert "Running stage 'sft'" in rerun and "Running stage 'mcts@1'" in rerun
    diff = run([sys.executable, "-m", "dvc", "metrics", "diff", "--json"], project).stdout.strip()
    assert json.loads(diff or "{}") == {}
