"""A prepared GPU check, in one go: is the worse bf16 result seen once bf16 training or seed noise; the
transformers backend in fp32 and bf16, and SI-MCTS on it with and without the tick barrier; the vLLM backend
where vLLM is installed. Prints each step's time.

    python benchmarks/gpu_check.py --workdir /tmp/gpu-check            # a GPU machine: the default sizes
    python benchmarks/gpu_check.py --workdir /tmp/gpu-check --dry-run  # tiny sizes on CPU (CI, under a minute)

On the default configuration (params.yaml's data, base, sft and heldout sections) it trains SFT in fp32 and
in bf16 for seeds 0 and 1 (the seed sets the world, the model's initialisation and the data order, as
`dvc exp run -S seed=N` does), judges every model's greedy held-out answers with the same fp32 decoding
(so only the training dtype differs), then decodes the seed-0 fp32 model again with the transformers
backend in bf16, searches 16 of its held-out prompts with SI-MCTS on that backend in lock-step and without the
tick barrier (nodes/s, and whether the trees are the same), and, if vLLM imports, decodes with the vLLM backend
and runs one SI-MCTS round on it. It stops starting
steps past `--budget-s` (default 420 s, so that the whole check stays within 8 minutes on one H200; not yet
run on one) and says plainly what it skipped and why. Writes gpu_check.json in the workdir.
"""

import argparse
import dataclasses
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stages.common import with_seed  # noqa: E402
from stair.config import from_mapping  # noqa: E402
from stair.data import DataParams, build_dataset  # noqa: E402
from stair.evaluation import HeldoutParams, evaluate_greedy, summarize  # noqa: E402
from stair.generation import BackendParams, make_backend  # noqa: E402
from stair.judges import JudgeParams, build_judge  # noqa: E402
from stair.mcts import MCTSParams  # noqa: E402
from stair.modeling import TinyModelConfig, init_tiny_model, train_tokenizer  # noqa: E402
from stair.reward import RewardParams  # noqa: E402
from stair.training.common import save_model  # noqa: E402
from stair.training.sft import SFTParams, train_sft  # noqa: E402

# --dry-run: a world, model and training small enough for a CPU in seconds (the code path, not the numbers).
DRY_WORLD = dict(sft_math=8, sft_harmful=6, sft_benign=2, seed_math=2, seed_harmful=1, seed_jailbreak=2,
                 seed_benign=2, heldout_per_group=1)
DRY_TINY = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, max_length=256)
DRY_SFT = dict(epochs=1.0, batch_size=8, max_length=128, logging_steps=1)
DRY_MCTS = dict(iterations=3, max_step_tokens=8, max_response_tokens=16)
METRICS = ("accuracy", "reward_mean", "unsafe_rate", "refusal_rate", "format_ok_rate")


class Check:
    """Runs named steps in order while the time budget lasts; records each one's time and result, or why not."""

    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s
        self.steps: list[dict] = []
        self.skipped: list[str] = []

    def run(self, name: str, step):
        elapsed = time.perf_counter() - self.start
        if elapsed > self.budget_s:
            self.skip(name, f"out of time ({elapsed:.0f} s used of --budget-s {self.budget_s:.0f})")
            return None
        began = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - began
        self.steps.append({"step": name, "seconds": round(seconds, 1), **(result or {})})
        print(f"{name:<44} {seconds:7.1f} s  {json.dumps(result or {})}", flush=True)
        return result

    def skip(self, name: str, why: str) -> None:
        self.skipped.append(f"{name}: {why}")
        print(f"{name:<44} SKIPPED: {why}", flush=True)


def defaults() -> dict:
    with open(REPO / "params.yaml") as handle:
        return yaml.safe_load(handle)


def held_out_metrics(model: Path, prompts, backend_params: BackendParams, max_new_tokens: int) -> dict:
    """Greedy held-out answers judged by the default rule judges: the `heldout` stage's 'all' metrics."""
    backend = make_backend(model, backend_params)
    judge = build_judge(JudgeParams(), RewardParams(), backend_params, self_model=model)
    records = evaluate_greedy(backend, backend.tokenizer, prompts, judge, model.name,
                              sampling=dataclasses.replace(HeldoutParams().sampling, max_new_tokens=max_new_tokens))
    summary = summarize(records)["all"]
    return {"n": len(records), **{k: summary.get(k) for k in METRICS},
            "answers": [r.response for r in records]}


def verdict(runs: dict[str, list[dict]], metric: str) -> str:
    """Is the bf16 - fp32 gap in `metric` larger than the spread between seeds of the same dtype?"""
    values = {dtype: [r[metric] for r in rows if r.get(metric) is not None] for dtype, rows in runs.items()}
    if any(len(v) < 2 for v in values.values()):
        return f"{metric}: fewer than 2 seeds per dtype ran, no verdict"
    gap = statistics.mean(values["bf16"]) - statistics.mean(values["fp32"])
    spread = max(max(v) - min(v) for v in values.values())
    kind = "within the seed spread: seed noise" if abs(gap) <= spread else "larger than the seed spread: bf16"
    return f"{metric}: bf16 - fp32 = {gap:+.3f}, seed spread {spread:.3f} -> {kind}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU: checks the script, not the numbers")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget-s", type=float, default=420.0)
    args = parser.parse_args()
    import torch

    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.dry_run:
        parser.error("no CUDA device here: run with --dry-run (tiny sizes on CPU)")
    seeds = args.seeds[:1] if args.dry_run else args.seeds
    params = defaults()
    check = Check(args.budget_s)
    if not on_gpu:
        check.skip("bf16 training", "no GPU: stair.training trains in bf16 only on CUDA, so the bf16 arm ran in fp32")
    if args.dry_run and len(args.seeds) > 1:
        check.skip(f"seeds {args.seeds[1:]}", "--dry-run trains one seed per dtype")
    args.workdir.mkdir(parents=True, exist_ok=True)
    max_new_tokens = 16 if args.dry_run else HeldoutParams(**(params.get("heldout") or {})).max_new_tokens
    fp32 = BackendParams(device="auto", dtype="float32", batch_size=256)
    runs: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    heldout: dict[int, list] = {}
    sft_sets: dict[int, list] = {}
    sft_models: dict[tuple[str, int], Path] = {}

    for seed in seeds:
        def world(seed=seed) -> dict:
            data = from_mapping(DataParams, with_seed(DataParams, params["data"], seed), "params.yaml: data")
            if args.dry_run:
                data = dataclasses.replace(data, world=dataclasses.replace(data.world, **DRY_WORLD))
            prompts, sft, _ = build_dataset(data, iterations=len(params["loop"]))
            heldout[seed] = [p for p in prompts if p.split == "heldout"]
            tiny = TinyModelConfig(**{**params["base"]["tiny"], **(DRY_TINY if args.dry_run else {}), "seed": seed})
            tokenizer = train_tokenizer([e.prompt for e in sft] + [e.response for e in sft], tiny.vocab_size)
            save_model(init_tiny_model(tokenizer, tiny), tokenizer, args.workdir / f"base_{seed}")
            sft_sets[seed] = sft
            return {"sft_examples": len(sft), "heldout_prompts": len(heldout[seed])}

        check.run(f"seed {seed}: world and base model", world)
        for dtype in ("fp32", "bf16"):
            def train(seed=seed, dtype=dtype) -> dict:
                raw = {**params["sft"], **(DRY_SFT if args.dry_run else {}), "bf16": dtype == "bf16"}
                sft_params = from_mapping(SFTParams, with_seed(SFTParams, raw, seed), "params.yaml: sft")
                out = args.workdir / f"sft_{dtype}_{seed}"
                result = train_sft(args.workdir / f"base_{seed}", sft_sets[seed], out, sft_params)
                sft_models[dtype, seed] = out
                return {"train_loss": result["train_loss"], "steps": result["steps"]}

            def judge(seed=seed, dtype=dtype) -> dict:
                metrics = held_out_metrics(sft_models[dtype, seed], heldout[seed], fp32, max_new_tokens)
                runs[dtype].append(metrics)
                return {k: v for k, v in metrics.items() if k != "answers"}

            if check.run(f"seed {seed}: SFT in {dtype}", train) is not None:
                check.run(f"seed {seed}: held-out greedy of the {dtype} SFT (fp32 decoding)", judge)

    first = seeds[0]
    reference = runs["fp32"][0] if runs["fp32"] else None
    if reference is not None:
        def agreement(metrics: dict) -> float:
            return sum(a == b for a, b in zip(metrics["answers"], reference["answers"])) / len(reference["answers"])

        def transformers_bf16() -> dict:
            bf16 = dataclasses.replace(fp32, dtype="bfloat16")
            metrics = held_out_metrics(sft_models["fp32", first], heldout[first], bf16, max_new_tokens)
            return {**{k: v for k, v in metrics.items() if k != "answers"}, "same_answers_as_fp32": agreement(metrics)}

        check.run(f"seed {first}: held-out greedy, transformers backend in bf16", transformers_bf16)

        searched: dict[bool, list] = {}

        def search(tick_barrier: bool):
            def run() -> dict:
                from stair.scaleout import search_shard

                prompts = [p.model_copy(update={"split": "iter_1"}) for p in heldout[first][:16]]
                raw = {**params["mcts"], **(DRY_MCTS if args.dry_run else {}), "tick_barrier": tick_barrier}
                mcts = from_mapping(MCTSParams, with_seed(MCTSParams, raw, first), "params.yaml: mcts")
                trees, stats = search_shard(sft_models["fp32", first], prompts, 1, mcts,
                                            dataclasses.replace(fp32, dtype="bfloat16"), JudgeParams(),
                                            RewardParams(), None)
                searched[tick_barrier] = trees
                same = {"same_trees_as_lock_step": trees == searched[True]} if True in searched else {}
                return {"trees": stats.trees, "nodes": stats.nodes, "search_s": round(stats.seconds, 1),
                        "nodes_per_s": round(stats.nodes / max(stats.seconds, 1e-9), 1), **same}
            return run

        # Whether decoding without the tick barrier pays off where a step costs about the same for few rows.
        check.run(f"seed {first}: SI-MCTS, transformers bf16, lock-step", search(True))
        check.run(f"seed {first}: SI-MCTS, transformers bf16, no tick barrier", search(False))
        if importlib.util.find_spec("vllm") is None:
            check.skip("vLLM backend", "vllm is not installed here (pip install -e '.[vllm]' on a GPU machine)")
        elif not on_gpu:
            check.skip("vLLM backend", "no GPU")
        else:
            import gc

            gc.collect()
            torch.cuda.empty_cache()  # vLLM sizes its cache from the memory free when it starts
            # Two engines (held-out, then search) in this one process: each takes 30% of the GPU.
            vllm = dataclasses.replace(fp32, name="vllm", dtype="bfloat16", gpu_memory_utilization=0.3)

            def vllm_heldout() -> dict:
                metrics = held_out_metrics(sft_models["fp32", first], heldout[first], vllm, max_new_tokens)
                return {**{k: v for k, v in metrics.items() if k != "answers"},
                        "same_answers_as_transformers_fp32": agreement(metrics)}

            def vllm_search() -> dict:
                from stair.scaleout import search_shard

                prompts = [p.model_copy(update={"split": "iter_1"}) for p in heldout[first][:16]]
                mcts = from_mapping(MCTSParams, with_seed(MCTSParams, params["mcts"], first), "params.yaml: mcts")
                _, stats = search_shard(sft_models["fp32", first], prompts, 1, mcts, vllm, JudgeParams(),
                                            RewardParams(), None)
                return {"trees": stats.trees, "nodes": stats.nodes, "nodes_per_s": round(stats.nodes / max(stats.seconds, 1e-9), 1)}

            check.run(f"seed {first}: held-out greedy, vLLM backend", vllm_heldout)
            check.run(f"seed {first}: SI-MCTS (params.yaml mcts) on 16 prompts, vLLM backend", vllm_search)

    verdicts = [verdict(runs, metric) for metric in ("accuracy", "reward_mean")]
    print("\nbf16 training vs fp32 (same fp32 decoding):")
    for line in verdicts:
        print("  " + line)
    print("skipped:" if check.skipped else "skipped: nothing")
    for line in check.skipped:
        print("  " + line)
    total = time.perf_counter() - check.start
    print(f"total {total:.0f} s on {'CUDA: ' + torch.cuda.get_device_name(0) if on_gpu else 'CPU'}")
    report = {"device": torch.cuda.get_device_name(0) if on_gpu else "cpu", "dry_run": args.dry_run, "seeds": seeds,
              "total_s": round(total, 1), "steps": check.steps, "skipped": check.skipped, "verdicts": verdicts,
              "runs": {d: [{k: v for k, v in r.items() if k != "answers"} for r in rows] for d, rows in runs.items()}}
    (args.workdir / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
