r"""heldout stage: greedy-decode the held-out prompts with one model and judge every answer.

    dvc repro heldout@1   # or, without DVC:
    python -m stages.heldout --name dpo_1 --model models/dpo/1 --prompts data/prompts \
        --sft models/sft --out data/heldout/dpo_1 \
        --metrics metrics/heldout/dpo_1.json --plot plots/heldout_families/dpo_1.json

Model judges that name 'self' are the SFT model (--sft) for every model compared. Writes the records
(EvalRecord rows), the metrics with, per suite (heldout_<group>): n, reward_mean, unsafe_rate, refusal_rate,
accuracy, format_ok_rate, tokens_per_prompt; and the plot: the framed prompts' metrics per framing family
(held_out_family: a family no training split has).
"""

from schemas import EvalRecord, SeedPrompt
from stages.common import load_section, log, stage_args, stage_main
from stair.evaluation import (
    HeldoutParams,
    evaluate_greedy,
    family_breakdown,
    family_rows,
    summarize,
    unseen_families,
)
from stair.generation import BackendParams, make_backend
from stair.judges import JudgeParams, build_judge, describe_judge
from stair.reward import RewardParams
from stair.store import read_artifact, write_artifact, write_json

ARGS = {"name": (str, "the model's name in metrics: sft, dpo_1, ..."), "model": "the model to check",
        "prompts": "the prompts (split heldout)", "sft": "the SFT model (the judge 'self' names)",
        "out": "the records to write", "metrics": "the metrics file to write", "plot": "the per-family plot to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    backend_params, raw_backend = load_section("backend", BackendParams)
    judge_params, raw_judges = load_section("judges", JudgeParams)
    reward_params, raw_reward = load_section("reward", RewardParams)
    params, raw = load_section("heldout", HeldoutParams)
    every_prompt = read_artifact(args.prompts, SeedPrompt)
    prompts = [p for p in every_prompt if p.split == "heldout"]

    backend = make_backend(args.model, backend_params)
    judge = build_judge(judge_params, reward_params, backend_params, self_model=args.sft, policy=(args.model, backend))
    judge_info = describe_judge(judge_params, args.sft)
    log.info("judge: %s", judge_info)
    log.info("held-out check of %s on %d prompts", args.name, len(prompts))
    records = evaluate_greedy(backend, backend.tokenizer, prompts, judge, args.name, sampling=params.sampling)
    write_artifact(args.out, records, EvalRecord, stage=f"heldout@{args.name}",
                   params={"heldout": raw, "backend": raw_backend, "judges": raw_judges, "reward": raw_reward,
                           "judge": judge_info},
                   inputs=[args.prompts, args.model])
    summary = summarize(records)
    write_json(args.metrics, summary)
    families = family_breakdown(records, unseen_families(every_prompt))
    write_json(args.plot, family_rows(families))
    log.info("%s: %s", args.name, summary["all"])


if __name__ == "__main__":
    main()
