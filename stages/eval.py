r"""eval stage: every model of the run on the benchmark suites, plus its held-out check.

    dvc repro eval        # or, without DVC:
    python -m stages.eval --inputs data/inputs --sft models/sft --prm models/prm \
        --heldout data/heldout --search-metrics metrics/search.json \
        --out data/eval --metrics metrics/eval.json

Decodes each suite greedily with the loop's models (sft, dpo_1..K), and with the final model under the
best search configuration of the search stage (e.g. dpo_3+beam@2, from --search-metrics); judges every
answer (refusal detection, or the StrongREJECT rubric with a judge model, 'self' being the SFT model;
exact answers for GSM8K/MATH-500), and merges in each model's held-out records (--heldout/<name>). Writes
the records (EvalRecord rows) and the metrics keyed by model then suite. A suite reads its `path`, or by
default the copy shipped in stair/benchdata (XSTest, AdvBench, GSM8K), else its Hugging Face dataset; a
local `path` must lie under --inputs, which dvc.yaml tracks.
Each model's finished suites are checkpointed under checkpoints/eval/, so a killed run resumes after the
last finished model and writes the same records and metrics as an uninterrupted one.
"""

import dataclasses
import functools
import json
from pathlib import Path

from schemas import EvalRecord
from stages.common import load_section, log, loop_models, stage_args, stage_main, tracked_input
from stair.checkpoint import UnitCheckpoint, run_units, stage_fingerprint
from stair.evaluation import EvalParams, add_goodness, evaluate_greedy, judge_records, load_suites, summarize
from stair.generation import BackendParams, Sampling, make_backend
from stair.judges import JudgeParams, build_judge, describe_judge
from stair.prm import PRMScorer
from stair.reward import RewardParams
from stair.search import SearchParams, run_search
from stair.store import read_artifact, write_artifact, write_json
from stair.suites import EMBEDDED

ARGS = {"inputs": "the folder local suite files must lie in (tracked by DVC)",
        "sft": "the SFT model (the judge 'self' names)", "prm": "the process reward model",
        "heldout": "the folder of every model's held-out records (<heldout>/<name>)",
        "search_metrics": "the search stage's metrics (its best method and budget)",
        "out": "the records to write", "metrics": "the metrics file to write"}


def best_search(path: Path) -> tuple[str, int] | None:
    """The search method and budget with the best held-out reward (greedy excluded), if search ran."""
    if not path.exists():
        return None
    results = {k: v["all"]["reward_mean"] for k, v in json.loads(path.read_text()).items() if not k.startswith("greedy")}
    if not results:
        return None
    method, budget = max(results, key=results.get).split("@")
    return method, int(budget)


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    params, raw = load_section("eval", EvalParams)
    search_params, raw_search = load_section("search", SearchParams)
    backend_params, raw_backend = load_section("backend", BackendParams)
    judge_params, raw_judges = load_section("judges", JudgeParams)
    reward, raw_reward = load_section("reward", RewardParams)
    # eval.judge_model "" keeps judges.judge_model; 'self' is the SFT model for every model compared.
    judge_params = dataclasses.replace(judge_params, safety=params.safety_judge,
                                       judge_model=params.judge_model or judge_params.judge_model)
    judge_info = describe_judge(judge_params, args.sft)
    log.info("judge for every model: %s", judge_info)
    models = loop_models()
    prompts, sources = load_suites(params)
    for name, source in sources.items():
        tracked_input(source, f"eval.suites.{name}.path", args.inputs, also=EMBEDDED)

    load_judge_model = functools.cache(make_backend)  # a judge model other than the policy loads once

    # Every model gets a fresh backend seeded alike, so each model's records are one independent unit.
    def load_policy(path: Path):
        backend = make_backend(path, backend_params, seed=params.seed)
        return backend, build_judge(judge_params, reward, backend_params, self_model=args.sft, policy=(path, backend),
                                    seed=params.seed, load=load_judge_model)

    def evaluate(name: str, path: Path) -> list[EvalRecord]:
        backend, judge = load_policy(path)
        return evaluate_greedy(backend, backend.tokenizer, prompts, judge, name, suite_of=lambda p: p.split,
                               sampling=Sampling(0.0, max_new_tokens=params.max_new_tokens))

    def search(name: str, method: str, budget: int) -> list[EvalRecord]:
        backend, judge = load_policy(list(models.values())[-1])
        scorer = PRMScorer.from_path(args.prm, batch_size=search_params.prm_batch_size)
        found = run_search(method, backend, scorer, [p.text for p in prompts], budget, search_params)
        return judge_records(prompts, [f.response for f in found], [f.n_tokens for f in found], judge, name,
                             lambda p: p.split, method=method, budget=budget)

    units = {name: functools.partial(evaluate, name, path) for name, path in models.items()} if prompts else {}
    names, inputs = list(models), list(models.values())
    best = best_search(args.search_metrics)
    if best and prompts:
        name = f"{names[-1]}+{best[0]}@{best[1]}"
        units[name] = functools.partial(search, name, *best)
        names.append(name)
        inputs.append(args.prm)
    stage_params = {"eval": raw, "search": raw_search, "backend": raw_backend, "judges": raw_judges,
                    "reward": raw_reward, "best": best}
    checkpoint = UnitCheckpoint(Path("checkpoints/eval"), stage_fingerprint(stage_params, inputs, prompts), EvalRecord)
    done = run_units(units, checkpoint)
    records: list[EvalRecord] = []
    for name in names:
        records += done.get(name, [])
        if name in models:
            records += read_artifact(args.heldout / name, EvalRecord)
        log.info("evaluated %s on %d prompts", name, len(prompts))

    metrics = {}
    judge_name = "rubric" if params.safety_judge == "strongreject" else "refusal"
    for name in names:
        rows = [r for r in records if r.model == name]
        metrics[name] = summarize(rows)
        add_goodness(metrics[name], rows, judge_name)
    write_artifact(args.out, records, EvalRecord, stage="eval",
                   params={"eval": raw, "backend": raw_backend, "judges": raw_judges, "reward": raw_reward,
                           "judge": judge_info},
                   inputs=inputs, extra={"sources": sources})
    write_json(args.metrics, metrics)
    checkpoint.remove()


if __name__ == "__main__":
    main()
