"""End to end: the paper profile on a Llama-3 stand-in, through `dvc exp run`, at micro sizes.

The profile is applied exactly as a user applies it (`stair profile`), then a micro profile on top points
it at the stand-in (a randomly initialised Llama with Llama-3's tokenizer conventions, built offline),
a second stand-in as the external judge, local data files in the official STAIR-SFT / STAIR-Prompts
layouts, the transformers backend (no GPU here) and LoRA. Everything else is the paper profile: the
official reward and judges, cut steps continued, min_visits, lengths as params. The model is random, so
the assertions are about the real-model path (templates, BOS/EOS, format tokens, lengths, judges), not
about what it learns.
"""

import json
import sys
from pathlib import Path

import pytest
import yaml

from schemas import EvalRecord, SeedPrompt, TreeNode
from stair.format import OUTPUT_CLOSE, OUTPUT_OPEN, STEP_CLOSE, STEP_OPEN
from stair.store import read_artifact, read_manifest
from stair.world import WorldConfig, generate_world
from tests.project import commit, copy_repo, run
from tests.standin import EOS, EOT, build_llama3_standin

pytestmark = pytest.mark.slow


def official_layout(response: str) -> str:
    """A response as STAIR-SFT writes it: a newline inside each tag, a blank line between chunks."""
    return (response.replace(STEP_OPEN, f"{STEP_OPEN}\n").replace(STEP_CLOSE, f"\n{STEP_CLOSE}\n\n")
            .replace(OUTPUT_OPEN, f"{OUTPUT_OPEN}\n").replace(OUTPUT_CLOSE, f"\n{OUTPUT_CLOSE}"))


def write_official_data(folder: Path) -> None:
    """A small SFT file and prompts file in the layouts of thu-ml/STAIR-SFT and prompt_data/examples.json."""
    world = generate_world(WorldConfig(sft_math=16, sft_harmful=12, sft_benign=12, seed_math=4, seed_harmful=2,
                                       seed_jailbreak=4, seed_benign=4, heldout_per_group=2, iterations=1))
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "stair-sft.jsonl").open("w") as handle:
        for example in world.sft:
            handle.write(json.dumps({"prompt": example.prompt, "answer": official_layout(example.response),
                                     "source": "world"}) + "\n")
    prompts = [{"question": p.text, "type": p.kind, **({"ground_truth": p.ground_truth} if p.ground_truth else {})}
               for p in world.prompts if p.split != "sft"]
    (folder / "stair-prompts.json").write_text(json.dumps(prompts, indent=2))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("paper"))
    texts = [line for line in (root / "README.md").read_text().splitlines() if line.strip()]
    policy = build_llama3_standin(tmp_path_factory.mktemp("llama3"), texts, seed=0)
    judge = build_llama3_standin(tmp_path_factory.mktemp("judge"), texts, seed=1)
    write_official_data(root / "data/inputs")
    run([sys.executable, "-m", "stair.cli", "profile", "paper-llama-3.1-8b"], root)
    micro = {
        "extends": [],
        "base": {"model": str(policy)},
        "backend": {"name": "transformers", "dtype": "float32", "batch_size": 64},
        "data": {"sft": "data/inputs/stair-sft.jsonl", "prompts": "data/inputs/stair-prompts.json",
                 "heldout_fraction": 0.3},
        "loop": {"1": {"policy": "models/sft", "out": "models/dpo/1"}},
        "judges": {"judge_model": str(judge), "max_new_tokens": 12},
        # Steps long enough that the random model sometimes samples a closing tag: the PRM reads steps there.
        "mcts": {"iterations": 4, "max_depth": 3, "max_step_tokens": 48, "max_response_tokens": 64,
                 "concurrent_trees": 8},
        "pairs": {"min_visits": 1},
        "sft": {"epochs": 1.0, "batch_size": 8, "max_length": 512, "bf16": False, "lora": {"r": 4}},
        "dpo": {"epochs": 1.0, "batch_size": 4, "max_length": 512, "bf16": False, "lora": {"r": 4}},
        "prm": {"epochs": 1.0, "batch_size": 4, "max_length": 512, "bf16": False, "lora": {"r": 4}, "runs": 1},
        "prm_labels": {"min_visits": 1},
        "search": {"budgets": [2], "per_suite": 2, "max_steps": 2, "max_step_tokens": 24,
                   "max_response_tokens": 48},
        "heldout": {"max_new_tokens": 24},
        "eval": {"suites": {"xstest": {"limit": 2}, "gsm8k": {"limit": 2}}, "max_new_tokens": 24},
    }
    del micro["extends"]
    (root / "profiles/micro-standin.yaml").write_text(yaml.safe_dump(micro, sort_keys=False))
    run([sys.executable, "-m", "stair.cli", "profile", "micro-standin"], root)
    commit(root, "paper profile on the stand-in")
    run([sys.executable, "-m", "dvc", "exp", "run", "-n", "paper-standin"], root)
    return root


def test_the_paper_profile_runs_every_stage(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["reward"]["name"] == "official" and params["mcts"]["cut_steps"] == "continue"
    assert params["judges"]["helpfulness"] == "self_rating" and params["sft"]["lora"]["r"] == 4
    for model in ("base", "sft", "dpo/1", "prm"):
        assert (project / "models" / model / "model.safetensors").exists(), model
    nodes = read_artifact(project / "data/nodes/1", TreeNode)
    assert nodes and read_artifact(project / "data/eval", EvalRecord)
    assert "paper-standin" in run([sys.executable, "-m", "dvc", "exp", "show", "--no-pager", "--csv"], project).stdout


def test_the_real_model_conventions_hold_in_the_artifacts(project: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(project / "models/sft")
    assert tokenizer.eos_token == EOT  # the template's end of turn, not <|end_of_text|>
    for node in read_artifact(project / "data/nodes/1", TreeNode):
        assert EOT not in node.step and EOS not in node.step  # stop tokens: generation ends there, text dropped
    by_id = {(n.tree_id, n.node_id): n for n in read_artifact(project / "data/nodes/1", TreeNode)}
    for node in by_id.values():
        if node.parent_id is not None:  # the length param reaches generation: no step is longer
            assert node.n_tokens - by_id[(node.tree_id, node.parent_id)].n_tokens <= 48


def test_the_data_came_from_the_official_layouts(project: Path) -> None:
    prompts = read_artifact(project / "data/prompts", SeedPrompt)
    assert {p.kind for p in prompts} == {"safety", "helpfulness"}
    assert any(p.ground_truth for p in prompts if p.kind == "helpfulness")
    assert len({p.id for p in prompts}) == len(prompts)


def test_the_external_judge_is_the_one_named(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    manifest = read_manifest(project / "data/heldout/sft")
    assert params["judges"]["judge_model"] in json.dumps(manifest.params)
