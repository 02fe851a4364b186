"""heldout stage: greedy-decode the held-out prompts with one model and judge every answer.

    dvc repro heldout@1   # or: python -m stages.heldout --name dpo_1 --model models/dpo/1

Writes data/heldout/<name> (EvalRecord rows), metrics/heldout/<name>.json with, per suite
(heldout_<group>): n, reward_mean, unsafe_rate, refusal_rate, accuracy, format_ok_rate,
tokens_per_prompt; and plots/heldout_families/<name>.json, the framed prompts' metrics per framing
family (held_out_family: a family no training split has).
"""

import argparse
from pathlib import Path

from schemas import EvalRecord, SeedPrompt
from stages.common import load_section, log, stage_main
from stair.evaluation import (
    HeldoutParams,
    evaluate_greedy,
    family_breakdown,
    family_rows,
    summarize,
    unseen_families,
)
from stair.generation import BackendParams, make_backend
from stair.judges import JudgeParams, make_judge
from stair.reward import RewardParams
from stair.store import read_artifact, write_artifact, write_json


@stage_main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True, help="the model's name in metrics: sft, dpo_1, ...")
    parser.add_argument("--model", type=Path, required=True, help="the model folder")
    args = parser.parse_args()
    backend_params, raw_backend = load_section("backend", BackendParams)
    judge_params, raw_judges = load_section("judges", JudgeParams)
    reward_params, raw_reward = load_section("reward", RewardParams)
    params, raw = load_section("heldout", HeldoutParams)
    prompts_path, model_path = Path("data/prompts"), args.model
    every_prompt = read_artifact(prompts_path, SeedPrompt)
    prompts = [p for p in every_prompt if p.split == "heldout"]

    backend = make_backend(model_path, backend_params)
    judge = make_judge(judge_params, reward_params, policy=(backend, backend.tokenizer))
    log.info("held-out check of %s on %d prompts", args.name, len(prompts))
    records = evaluate_greedy(backend, backend.tokenizer, prompts, judge, args.name, sampling=params.sampling)
    write_artifact(Path("data/heldout") / args.name, records, EvalRecord, stage=f"heldout@{args.name}",
                   params={"heldout": raw, "backend": raw_backend, "judges": raw_judges, "reward": raw_reward},
                   inputs=[prompts_path, model_path])
    summary = summarize(records)
    write_json(Path("metrics/heldout") / f"{args.name}.json", summary)
    families = family_breakdown(records, unseen_families(every_prompt))
    write_json(Path("plots/heldout_families") / f"{args.name}.json", family_rows(families))
    log.info("%s: %s", args.name, summary["all"])


if __name__ == "__main__":
    main()
