"""search stage: PRM-guided test-time search on the held-out sets with the final policy.

    dvc repro search      # or: python -m stages.search

Runs every method of `search.methods` at every budget of `search.budgets` (greedy once), judges the
answers as the held-out check does, and writes data/search (EvalRecord rows), metrics/search.json
keyed "<method>@<budget>" and plots/search.json (reward against tokens per prompt). Each finished
method@budget is checkpointed under checkpoints/search/, so a killed run resumes after the last one and
writes the same records and metrics as an uninterrupted one.
"""

import functools
from pathlib import Path

from schemas import EvalRecord, SeedPrompt
from stages.common import SFT_MODEL, load_section, log, loop_items, stage_main
from stair.checkpoint import UnitCheckpoint, run_units, stage_fingerprint
from stair.evaluation import first_per_group, heldout_suite, judge_records, summarize
from stair.generation import BackendParams, make_backend
from stair.judges import JudgeParams, build_judge, describe_judge
from stair.prm import PRMScorer
from stair.reward import RewardParams
from stair.search import SearchParams, run_search
from stair.store import read_artifact, write_artifact, write_json


@stage_main
def main() -> None:
    params, raw = load_section("search", SearchParams)
    backend_params, raw_backend = load_section("backend", BackendParams)
    judge_params, raw_judges = load_section("judges", JudgeParams)
    reward, raw_reward = load_section("reward", RewardParams)
    last = list(loop_items())[-1]
    policy, name = Path(loop_items()[last]["out"]), f"dpo_{last}"  # the name every other artifact gives it
    prompts_path, prm_path = Path("data/prompts"), Path("models/prm")
    prompts = [p for p in read_artifact(prompts_path, SeedPrompt) if p.split == "heldout"]
    if params.per_suite:
        prompts = first_per_group(prompts, params.per_suite)
    backend = make_backend(policy, backend_params, seed=params.seed)
    judge = build_judge(judge_params, reward, backend_params, self_model=SFT_MODEL, policy=(policy, backend),
                        seed=params.seed)
    judge_info = describe_judge(judge_params, SFT_MODEL)
    log.info("judge: %s", judge_info)
    scorer = PRMScorer.from_path(prm_path, batch_size=params.prm_batch_size)

    def search(method: str, budget: int) -> list[EvalRecord]:
        found = run_search(method, backend, scorer, [p.text for p in prompts], budget, params)
        return judge_records(prompts, [f.response for f in found], [f.n_tokens for f in found], judge,
                             name, heldout_suite, method=method, budget=budget)

    grid = [(m, b) for m in params.methods for b in ((1,) if m == "greedy" else params.budgets)]
    stage_params = {"search": raw, "backend": raw_backend, "judges": raw_judges, "reward": raw_reward}
    checkpoint = UnitCheckpoint(Path("checkpoints/search"), stage_fingerprint(stage_params, [policy, prm_path], prompts),
                                EvalRecord)
    done = run_units({f"{m}@{b}": functools.partial(search, m, b) for m, b in grid}, checkpoint, backend=backend)
    records, metrics, curve = [], {}, []
    for (method, budget), (key, rows) in zip(grid, done.items()):
        metrics[key] = summary = summarize(rows)
        curve.append({"method": method, "budget": budget, **summary["all"]})
        records.extend(rows)
        log.info("%s: %s", key, summary["all"])
    write_artifact(Path("data/search"), records, EvalRecord, stage="search", params={**stage_params, "judge": judge_info},
                   inputs=[prompts_path, policy, prm_path])
    write_json(Path("metrics/search.json"), metrics)
    write_json(Path("plots/search.json"), curve)
    checkpoint.remove()


if __name__ == "__main__":
    main()
