"""SI-MCTS tree-building throughput: the batched engine, one request at a time, and the hardware limit.

    python benchmarks/mcts_throughput.py [--model models/sft] [--data data/prompts] [--prompts 24]
                                         [--iterations 12]

Builds the same trees (same model, seed prompts of iter_1, iterations and m) three times: with the batched
engine (all trees searched together, all their expansions in one generate call per tick with n = m
per node, then all rollouts in one, then one judge call), with the engine and no tick barrier (each tree's
next request decoded as soon as its last is back: `mcts.tick_barrier: false`), and the way the official code
does it (one tree at a time, every sample its own generate call). Then times the model's plain batched
`model.generate` at the engine's batch size, every row sampling the same number of tokens (no row
stops early, so no step is spent on padding): on prompts the engine sent, for the engine's mean
completion length, and on the seed prompts for a whole step's tokens (decoding alone, what the
issue calls the hardware limit). Prints nodes/s and generated tokens/s of each, and the ratios. Run `dvc repro sft` first for the model.
"""

import argparse
import dataclasses
import random
import time
from pathlib import Path

import yaml

from schemas import SeedPrompt
from stair.config import from_mapping
from stair.generation import SequentialBackend, TransformersBackend
from stair.judges import JudgeParams, make_judge
from stair.mcts import SIMCTS, MCTSParams, SearchStats, make_trees
from stair.modeling import chat_prompt
from stair.reward import RewardParams
from stair.store import read_artifact


class Recording:
    """Passes calls through to a backend and keeps every prompt and completion length it sent back."""

    def __init__(self, inner):
        self.inner, self.tokenizer = inner, inner.tokenizer
        self.keyed = getattr(inner, "keyed", False)
        self.prompts: list[str] = []
        self.lengths: list[int] = []

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def generate(self, prompts, n, sampling, mode, **kwargs):
        out = self.inner.generate(prompts, n, sampling, mode, **kwargs)
        self.prompts += list(prompts)
        self.lengths += [c.n_tokens for samples in out for c in samples]
        return out


def build(backend, prompts: list[SeedPrompt], params: MCTSParams) -> tuple[int, SearchStats]:
    judge = make_judge(JudgeParams(), RewardParams())
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    trees = make_trees(prompts, texts, backend.count_tokens(texts), 1, params.seed)
    search = SIMCTS(backend, judge, params)
    search.run(trees)
    return sum(len(t.nodes) for t in trees), search.stats


def raw_generate_tokens_per_s(backend: TransformersBackend, prompts: list[str], new_tokens: int,
                              params: MCTSParams) -> float:
    """Tokens/s of one plain `model.generate` call over `prompts`, each row sampling exactly `new_tokens`."""
    import torch

    batch = backend.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = batch.to(backend.model.device)
    torch.manual_seed(params.seed)
    start = time.perf_counter()
    with torch.no_grad():
        backend.model.generate(**batch, do_sample=True, temperature=params.temperature, top_p=params.top_p,
                               top_k=params.top_k or None, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                               pad_token_id=backend.tokenizer.pad_token_id)
    return len(prompts) * new_tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/sft"))
    parser.add_argument("--data", type=Path, default=Path("data/prompts"), help="the seed prompts artifact")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=None, help="default: params.yaml mcts.iterations")
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model} not found: run `dvc repro sft` first")
    params = from_mapping(MCTSParams, yaml.safe_load(Path("params.yaml").read_text())["mcts"], "params.yaml: mcts")
    if args.iterations:
        params = dataclasses.replace(params, iterations=args.iterations)
    prompts = [p for p in read_artifact(args.data, SeedPrompt) if p.split == "iter_1"][: args.prompts]
    backend = TransformersBackend.from_path(args.model, seed=params.seed)

    recording = Recording(backend)
    engine_nodes, engine = build(recording, prompts, params)
    sequential = dataclasses.replace(params, concurrent_trees=1)
    one_nodes, one = build(SequentialBackend(backend), prompts, sequential)
    free_nodes, free = build(backend, prompts, dataclasses.replace(params, tick_barrier=False))
    # The engine's batch: every tree's m children at once, at most the backend's batch size.
    batch_size = min(backend.batch_size, min(params.concurrent_trees, len(prompts)) * params.children)
    sample = random.Random(params.seed).choices(recording.prompts, k=batch_size)
    mean_length = max(1, round(sum(recording.lengths) / len(recording.lengths)))
    raw = raw_generate_tokens_per_s(backend, sample, mean_length, params)
    # Decoding alone (the seed prompts, short, and a whole step's tokens): what decoding peaks at here.
    roots = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    decoding = raw_generate_tokens_per_s(backend, (roots * batch_size)[:batch_size], params.max_step_tokens, params)

    def line(name: str, nodes: int, stats: SearchStats) -> tuple[float, float]:
        nodes_s, tokens_s = nodes / stats.seconds, stats.generated_tokens / stats.seconds
        print(f"{name:24s} {nodes:5d} nodes, {stats.generated_tokens:7d} tokens in {stats.seconds:7.1f} s = "
              f"{nodes_s:7.2f} nodes/s, {tokens_s:7.1f} tokens/s")
        return nodes_s, tokens_s

    print(f"trees: {len(prompts)}  iterations: {params.iterations}  m: {params.children}  "
          f"batch: {batch_size}  mean completion: {mean_length} tokens")
    engine_nodes_s, engine_tokens_s = line("engine:", engine_nodes, engine)
    free_nodes_s, _ = line("engine, no tick barrier:", free_nodes, free)
    one_nodes_s, one_tokens_s = line("one request at a time:", one_nodes, one)
    print(f"{'raw batched generate:':24s} {batch_size} rows x {mean_length} tokens of the engine's prompts = "
          f"{raw:7.1f} tokens/s")
    print(f"{'raw batched decoding:':24s} {batch_size} rows x {params.max_step_tokens} tokens of the seed prompts = "
          f"{decoding:7.1f} tokens/s")
    print(f"engine / one at a time: {engine_nodes_s / one_nodes_s:.1f}x nodes/s, "
          f"{engine_tokens_s / one_tokens_s:.1f}x tokens/s")
    print(f"no tick barrier / engine: {free_nodes_s / engine_nodes_s:.2f}x nodes/s")
    print(f"engine / raw generate:  {engine_tokens_s / raw:.0%} of its tokens/s on the engine's prompts, "
          f"{engine_tokens_s / decoding:.0%} of raw decoding's")


if __name__ == "__main__":
    main()
