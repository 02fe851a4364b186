"""What the tick barrier costs SI-MCTS here: the search's own requests replayed through measured step costs.

    python benchmarks/tick_barrier.py [--model models/sft] [--data data/prompts] [--prompts 48]

Runs the search of iteration 1's seed prompts once with the engine (params.yaml's mcts and backend
batch size), recording every request (its tree, tick, kind and the length of each sample) and every
decoding step (rows in the batch, seconds). Fits a step's seconds as a + b * rows, then replays the same
requests step by step under three schedules and prints the decoding seconds of each and the ratio to
lock-step:
- lock-step (the engine today): in each tick every expansion, then every rollout, each call running until
  its longest sample ends;
- pipelined ticks: a tree's rollouts start when its own expansion ends; the tick still waits for every tree;
- no barrier: a tree sends its next request when its last one ends (the trees are the same; only the
  batches differ).
The replay keeps the backend's batch size and leaves prefill passes out (a schedule without barriers runs
more, smaller ones), so it bounds what removing the barrier can give on this machine. The first line
says whether the lock-step replay takes about as many steps as the engine did (it counts a sample's first
token as a step, which the engine takes from the prefill pass; on the default 1,315 against 1,297).
"""

import argparse
import time
from collections import defaultdict
from pathlib import Path

import yaml

from schemas import SeedPrompt
from stair.config import from_mapping
from stair.generation import TransformersBackend
from stair.judges import JudgeParams, make_judge
from stair.mcts import SIMCTS, MCTSParams, make_trees
from stair.modeling import chat_prompt
from stair.reward import RewardParams
from stair.store import read_artifact


def record(backend: TransformersBackend, prompts: list[SeedPrompt], params: MCTSParams):
    """Search once; returns the requests as (tree, tick, kind, sample lengths) and the decoding steps as
    (rows, seconds)."""
    requests, steps, tick = [], [], [0]
    generate, forward = backend.generate, backend._forward

    def recording_generate(texts, n, sampling, mode, keys):
        out = generate(texts, n, sampling, mode, keys=keys)
        requests.extend((key.split("/")[0], tick[0], mode, [c.n_tokens for c in samples])
                        for key, samples in zip(keys, out))
        return out

    def timed_forward(input_ids, *args):
        start = time.perf_counter()
        logits = forward(input_ids, *args)
        if input_ids.shape[1] == 1:
            steps.append((input_ids.shape[0], time.perf_counter() - start))
        return logits

    backend.generate, backend._forward = recording_generate, timed_forward
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]
    search = SIMCTS(backend, make_judge(JudgeParams(), RewardParams()), params)
    search.run(make_trees(prompts, texts, backend.count_tokens(texts), 1, params.seed),
               on_tick=lambda active, waiting: tick.__setitem__(0, tick[0] + 1))
    return requests, steps


def fit(steps: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares: seconds = a + b * rows."""
    n = len(steps)
    mean_rows, mean_s = sum(r for r, _ in steps) / n, sum(s for _, s in steps) / n
    b = sum((r - mean_rows) * (s - mean_s) for r, s in steps) / sum((r - mean_rows) ** 2 for r, _ in steps)
    return mean_s - b * mean_rows, b


def replay(requests, barrier, batch_size: int, cost) -> float:
    """Decoding seconds of the requests under a schedule. Each tree's requests run in order, those of one
    (tick, kind) together; `barrier(tick, kind)` orders the groups every tree must finish before the next
    starts (None: no barrier). Samples wait in arrival order for one of `batch_size` rows."""
    groups = defaultdict(list)  # tree -> [(tick, kind, lengths of every sample in the group)]
    for tree, tick, kind, lengths in requests:
        if groups[tree] and groups[tree][-1][:2] == (tick, kind):
            groups[tree][-1][2].extend(lengths)
        else:
            groups[tree].append((tick, kind, list(lengths)))
    key = barrier or (lambda tick, kind: 0)
    next_group = {tree: 0 for tree in groups}
    running: dict[str, list[int]] = {}  # tree -> remaining tokens of its group's samples (waiting or decoding)
    queue: list[tuple[str, int]] = []  # (tree, sample) in arrival order
    seconds = 0.0
    while True:
        pending = [key(*groups[t][next_group[t]][:2]) for t in groups if next_group[t] < len(groups[t])]
        open_key = min(pending + [key(*groups[t][next_group[t] - 1][:2]) for t in running], default=None)
        if open_key is None:
            return seconds
        for tree in groups:
            if tree not in running and next_group[tree] < len(groups[tree]):
                tick, kind, lengths = groups[tree][next_group[tree]]
                if key(tick, kind) <= open_key:
                    running[tree] = list(lengths)
                    queue += [(tree, i) for i in range(len(lengths))]
                    next_group[tree] += 1
        decoding = queue[:batch_size]
        seconds += cost(len(decoding))
        for tree, i in decoding:
            running[tree][i] -= 1
        queue = [(tree, i) for tree, i in queue if running[tree][i] > 0]
        for tree in [t for t, left in running.items() if all(n <= 0 for n in left)]:
            del running[tree]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/sft"))
    parser.add_argument("--data", type=Path, default=Path("data/prompts"), help="the seed prompts artifact")
    parser.add_argument("--prompts", type=int, default=48)
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model} not found: run `dvc repro sft` first")
    config = yaml.safe_load(Path("params.yaml").read_text())
    params = from_mapping(MCTSParams, config["mcts"], "params.yaml: mcts")
    prompts = [p for p in read_artifact(args.data, SeedPrompt) if p.split == "iter_1"][: args.prompts]
    backend = TransformersBackend.from_path(args.model, seed=params.seed, batch_size=config["backend"]["batch_size"])
    requests, steps = record(backend, prompts, params)
    a, b = fit(steps)

    def cost(rows: int) -> float:
        return a + b * rows if rows else 0.0

    schedules = {"lock-step": lambda tick, kind: (tick, kind == "response"),
                 "pipelined ticks": lambda tick, kind: tick, "no barrier": None}
    replayed_steps = replay(requests, schedules["lock-step"], backend.batch_size, lambda rows: 1.0 if rows else 0.0)
    print(f"{len(prompts)} trees, {len(requests)} requests; decoding measured: {len(steps)} steps, "
          f"{sum(s for _, s in steps):.1f} s (lock-step replay: {replayed_steps:.0f} steps); "
          f"step = {a * 1000:.1f} ms + {b * 1000:.3f} ms per row")
    seconds = {name: replay(requests, barrier, backend.batch_size, cost) for name, barrier in schedules.items()}
    for name, value in seconds.items():
        print(f"{name:16s} {value:6.1f} s of decoding, {value / seconds['lock-step']:.2f} of lock-step")


if __name__ == "__main__":
    main()
