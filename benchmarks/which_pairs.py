"""Which preference pairs teach what: one DPO round from the same policy on subsets of a round's pairs.

    python benchmarks/which_pairs.py [--round 1] [--set learning_rate=0.0001 --set sft_weight=1.0]
                                     [--subsets all without:benign_sensitive only:jailbreak ...]

Trains the round's policy (params.yaml `loop`) on the pairs of data/pairs/<round>, split by the prompt group
each pair came from (the world's groups; `kind` for prompts without one), then greedy-decodes the held-out
prompts with each model and prints, per subset, the held-out metrics beside the policy's own. Subsets:
`all`, `without:<group>`, `only:<group>` (default: all, and without each group in turn). DPO settings are
params.yaml's `dpo` section with `--set` overrides; the default learning rate barely moves the tiny model,
so the question is best asked at one that does. Models go under --out (default /tmp/stair-which-pairs).
Run `dvc repro pairs@<round>` first.
"""

import argparse
import json
from pathlib import Path

import yaml

from schemas import SeedPrompt, StepPair
from stair.config import from_mapping
from stair.evaluation import evaluate_greedy, summarize
from stair.generation import BackendParams, make_backend
from stair.judges import JudgeParams, build_judge
from stair.reward import RewardParams
from stair.store import read_artifact
from stair.training.dpo import DPOParams, train_step_dpo

COLUMNS = [("heldout_benign_sensitive", "refusal_rate", "benign seen refused"),
           ("heldout_benign_novel", "refusal_rate", "benign novel refused"),
           ("heldout_jailbreak", "unsafe_rate", "jailbreak unsafe"),
           ("heldout_harmful", "unsafe_rate", "harmful unsafe"),
           ("heldout_math", "accuracy", "math accuracy"),
           ("all", "reward_mean", "reward")]


def group_of(prompt: SeedPrompt) -> str:
    return prompt.group or prompt.kind


def select(pairs: list[StepPair], groups: dict[str, str], subset: str) -> list[StepPair]:
    if subset == "all":
        return pairs
    how, _, group = subset.partition(":")
    if how not in ("without", "only") or not group:
        raise SystemExit(f"subset {subset!r}: expected all, without:<group> or only:<group>")
    return [p for p in pairs if (groups[p.prompt_id] == group) == (how == "only")]


def held_out_metrics(model: Path, prompts: list[SeedPrompt], backend_params: BackendParams,
                     judge_params: JudgeParams, reward: RewardParams) -> dict:
    """The held-out check's summary for `model`; a model judge named 'self' is models/sft, as in the stage."""
    backend = make_backend(model, backend_params)
    judge = build_judge(judge_params, reward, backend_params, self_model=Path("models/sft"), policy=(model, backend))
    return summarize(evaluate_greedy(backend, backend.tokenizer, prompts, judge, model.name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", default="1")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a dpo param")
    parser.add_argument("--subsets", nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/stair-which-pairs"))
    args = parser.parse_args()
    raw = yaml.safe_load(Path("params.yaml").read_text())
    section = {**raw["dpo"], "seed": raw["dpo"].get("seed", raw["seed"])}
    for item in args.set:
        key, _, value = item.partition("=")
        section[key] = yaml.safe_load(value)
    section.pop("pairs", None)  # where the stage reads pairs from; here always data/pairs/<round>
    params = from_mapping(DPOParams, section, "params.yaml: dpo with --set")
    if args.round not in raw["loop"]:
        raise SystemExit(f"--round {args.round}: params.yaml loop has rounds {', '.join(raw['loop'])}")
    policy = Path(raw["loop"][args.round]["policy"])
    reference = policy if params.reference == "policy" else Path("models/sft")  # as the dpo stage picks it
    pairs_dir = Path(f"data/pairs/{args.round}")
    if not (pairs_dir / "data.parquet").exists() or not policy.exists():
        raise SystemExit(f"{pairs_dir} or {policy} not found: run `dvc repro pairs@{args.round}` first")
    prompts = read_artifact(Path("data/prompts"), SeedPrompt)
    groups = {p.id: group_of(p) for p in prompts}
    pairs = read_artifact(pairs_dir, StepPair)
    present = sorted({groups[p.prompt_id] for p in pairs})
    subsets = args.subsets or ["all", *(f"without:{g}" for g in present)]
    held_out = [p for p in prompts if p.split == "heldout"]
    check = (held_out, from_mapping(BackendParams, raw["backend"], "params.yaml: backend"),
             from_mapping(JudgeParams, raw["judges"], "params.yaml: judges"),
             from_mapping(RewardParams, raw["reward"], "params.yaml: reward"))

    print(f"round {args.round}: {len(pairs)} pairs from {policy} "
          f"({', '.join(f'{g} {sum(groups[p.prompt_id] == g for p in pairs)}' for g in present)}); "
          f"dpo lr {params.learning_rate}, sft_weight {params.sft_weight}, {params.epochs} epochs", flush=True)
    rows = {"policy": held_out_metrics(policy, *check)}
    for subset in subsets:
        chosen = select(pairs, groups, subset)
        model = args.out / subset.replace(":", "-")
        train_step_dpo(policy, reference, chosen, model, params)
        summary = rows[f"{subset} ({len(chosen)})"] = held_out_metrics(model, *check)
        print(json.dumps({"subset": subset, "pairs": len(chosen), **{
            label: summary.get(suite, {}).get(metric) for suite, metric, label in COLUMNS}}), flush=True)

    print("\n| trained on | " + " | ".join(label for _, _, label in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, summary in rows.items():
        cells = [summary.get(suite, {}).get(metric) for suite, metric, _ in COLUMNS]
        print(f"| {name} | " + " | ".join("" if c is None else f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
