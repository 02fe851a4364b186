r"""search stage: PRM-guided test-time search on the held-out sets with the final policy (the loop's last model).

    dvc repro search      # or, without DVC:
    python -m stages.search --prompts data/prompts --prm models/prm --sft models/sft \
        --out data/search --metrics metrics/search.json --plot plots/search.json

Runs every method of `search.methods` at every budget of `search.budgets` (greedy once), judges the
answers as the held-out check does (model judges that name 'self' are the SFT model, --sft), and writes
the records (EvalRecord rows), the metrics keyed "<method>@<budget>" and the plot (reward against tokens
per prompt). Each finished
method@budget is checkpointed under checkpoints/search/, so a killed run resumes after the last one and
writes the same records and metrics as an uninterrupted one.
"""

import functools
from pathlib import Path

from schemas import EvalRecord, SeedPrompt
from stages.common import load_section, log, loop_models, stage_args, stage_main
from stair.checkpoint import UnitCheckpoint, run_units, stage_fingerprint
from stair.evaluation import first_per_group, heldout_suite, judge_records, summarize
from stair.generation import BackendParams, make_backend
from stair.judges import JudgeParams, build_judge, describe_judge
from stair.prm import PRMScorer
from stair.reward import RewardParams
from stair.search import SearchParams, run_search
from stair.store import read_artifact, write_artifact, write_json

ARGS = {"prompts": "the prompts (split heldout)", "prm": "the process reward model",
        "sft": "the SFT model (the judge 'self' names)", "out": "the records to write",
        "metrics": "the metrics file to write", "plot": "the reward-against-tokens plot to write"}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, raw = load_section("search", SearchParams)
    backend_params, raw_backend = load_section("backend", BackendParams)
    judge_params, raw_judges = load_section("judges", JudgeParams)
    reward, raw_reward = load_section("reward", RewardParams)
    name, policy = list(loop_models().items())[-1]
    prompts = [p for p in read_artifact(args.prompts, SeedPrompt) if p.split == "heldout"]
    if params.per_suite:
        prompts = first_per_group(prompts, params.per_suite)
    backend = make_backend(policy, backend_params, seed=params.seed)
    judge = build_judge(judge_params, reward, backend_params, self_model=args.sft, policy=(policy, backend),
                        seed=params.seed)
    judge_info = describe_judge(judge_params, args.sft)
    log.info("judge: %s", judge_info)
    scorer = PRMScorer.from_path(args.prm, batch_size=params.prm_batch_size)

    def search(method: str, budget: int) -> list[EvalRecord]:
        found = run_search(method, backend, scorer, [p.text for p in prompts], budget, params)
        return judge_records(prompts, [f.response for f in found], [f.n_tokens for f in found], judge,
                             name, heldout_suite, method=method, budget=budget)

    grid = [(m, b) for m in params.methods for b in ((1,) if m == "greedy" else params.budgets)]
    stage_params = {"search": raw, "backend": raw_backend, "judges": raw_judges, "reward": raw_reward}
    checkpoint = UnitCheckpoint(Path("checkpoints/search"), stage_fingerprint(stage_params, [policy, args.prm], prompts),
                                EvalRecord)
    done = run_units({f"{m}@{b}": functools.partial(search, m, b) for m, b in grid}, checkpoint, backend=backend)
    records, metrics, curve = [], {}, []
    for (method, budget), (key, rows) in zip(grid, done.items()):
        metrics[key] = summary = summarize(rows)
        curve.append({"method": method, "budget": budget, **summary["all"]})
        records.extend(rows)
        log.info("%s: %s", key, summary["all"])
    write_artifact(args.out, records, EvalRecord, stage="search", params={**stage_params, "judge": judge_info},
                   inputs=[args.prompts, policy, args.prm])
    write_json(args.metrics, metrics)
    write_json(args.plot, curve)
    checkpoint.remove()


if __name__ == "__main__":
    main()
