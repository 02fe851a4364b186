"""SI-MCTS tree-building throughput: the batched lock-step engine vs one request at a time.

    python benchmarks/mcts_throughput.py [--model models/sft] [--prompts 24] [--iterations 12]

Builds the same trees (same model, seed prompts of iter_1, iterations and m) twice: with the batched
engine (all trees in lock-step, one generate call per tick for expansions with n = m per node, one for
rollouts, one judge call), and the way the official code does it (one tree at a time, every sample its
own generate call). Prints nodes/s for both and the ratio. Run `dvc repro sft` first for the model.
"""

import argparse
import dataclasses
import time
from pathlib import Path

import yaml

from schemas import SeedPrompt
from stair.config import from_mapping
from stair.generation import SequentialBackend, TransformersBackend
from stair.judges import JudgeParams, make_judge
from stair.mcts import SIMCTS, MCTSParams, make_trees
from stair.modeling import chat_prompt
from stair.reward import RewardParams
from stair.store import read_artifact


def build(backend, prompts: list[SeedPrompt], params: MCTSParams) -> tuple[int, float]:
    judge = make_judge(JudgeParams(), RewardParams())
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    trees = make_trees(prompts, texts, backend.count_tokens(texts), 1, params.seed)
    start = time.perf_counter()
    SIMCTS(backend, judge, params).run(trees)
    return sum(len(t.nodes) for t in trees), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/sft"))
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=None, help="default: params.yaml mcts.iterations")
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model} not found: run `dvc repro sft` first")
    params = from_mapping(MCTSParams, yaml.safe_load(Path("params.yaml").read_text())["mcts"], "params.yaml: mcts")
    if args.iterations:
        params = dataclasses.replace(params, iterations=args.iterations)
    prompts = [p for p in read_artifact(Path("data/prompts"), SeedPrompt) if p.split == "iter_1"][: args.prompts]
    backend = TransformersBackend.from_path(args.model, seed=params.seed)

    batched_nodes, batched_s = build(backend, prompts, params)
    sequential = dataclasses.replace(params, concurrent_trees=1)
    one_nodes, one_s = build(SequentialBackend(backend), prompts, sequential)

    print(f"trees: {len(prompts)}  iterations: {params.iterations}  m: {params.children}")
    print(f"batched lock-step:       {batched_nodes:5d} nodes in {batched_s:7.1f} s = {batched_nodes / batched_s:7.2f} nodes/s")
    print(f"one request at a time:   {one_nodes:5d} nodes in {one_s:7.1f} s = {one_nodes / one_s:7.2f} nodes/s")
    print(f"speed-up: {(batched_nodes / batched_s) / (one_nodes / one_s):.1f}x")


if __name__ == "__main__":
    main()
