"""Pair extraction speed: DuckDB SQL vs the official per-node Python walk, on a synthetic nodes table.

    python benchmarks/pairs_speed.py [--nodes 100000]

Builds a random forest of SI-MCTS trees (~100k nodes), checks both give the same pairs, and prints
both times and the ratio. The SQL version reads the parquet artifact directly, as the stage does.
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

import duckdb

from schemas import SeedPrompt, TreeNode
from stair.pairs import PairParams, extract_pairs, step_pairs_reference
from stair.reward import RewardParams
from stair.store import DATA_FILE, write_artifact


def synthetic_nodes(n_nodes: int, seed: int = 0) -> tuple[list[TreeNode], list[SeedPrompt]]:
    """Trees shaped like SI-MCTS output: m = 4 children per expanded node, depth up to 7."""
    rng = random.Random(seed)
    nodes, prompts, t = [], [], 0
    while len(nodes) < n_nodes:
        kind = rng.choice(["safety", "helpfulness"])
        prompts.append(SeedPrompt(id=f"p{t}", text=f"request {t}", kind=kind, source="bench", split="iter_1"))
        tree = [dict(node_id=0, parent_id=None, depth=0, n_tokens=40, terminal=False)]
        frontier = [0]
        while frontier and len(tree) < 120:
            parent = tree[frontier.pop(rng.randrange(len(frontier)))]
            for _ in range(4):
                child = dict(node_id=len(tree), parent_id=parent["node_id"], depth=parent["depth"] + 1,
                             n_tokens=parent["n_tokens"] + rng.randint(20, 120), terminal=rng.random() < 0.25)
                tree.append(child)
                if not child["terminal"] and child["depth"] < 7:
                    frontier.append(child["node_id"])
        for row in tree:
            visits = rng.randint(0, 8)
            value = round(rng.uniform(-3, 3), 3)
            nodes.append(TreeNode(tree_id=f"t{t}", prompt_id=f"p{t}", iteration=1, kind=kind, step=f"step {row['node_id']}",
                                  visits=visits, evaluations=min(visits, 1), value_sum=value * visits, value=value,
                                  reward=value if row["terminal"] else None, **row))
        t += 1
    return nodes, prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    args = parser.parse_args()
    nodes, prompts = synthetic_nodes(args.nodes)
    params, reward = PairParams(), RewardParams()
    with tempfile.TemporaryDirectory() as tmp:
        nodes_dir, prompts_dir = Path(tmp) / "nodes", Path(tmp) / "prompts"
        write_artifact(nodes_dir, nodes, TreeNode, stage="bench", params={})
        write_artifact(prompts_dir, prompts, SeedPrompt, stage="bench", params={})

        start = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"create view nodes as select * from read_parquet('{nodes_dir / DATA_FILE}')")
        con.execute(f"create view prompts as select * from read_parquet('{prompts_dir / DATA_FILE}')")
        sql_pairs = extract_pairs(con, params, reward)
        sql_s = time.perf_counter() - start

    start = time.perf_counter()
    python_pairs = step_pairs_reference(nodes, prompts, params, reward)
    python_s = time.perf_counter() - start

    key = lambda p: (p.prompt_id, tuple(p.prefix), p.chosen, p.rejected)  # noqa: E731
    assert sorted(map(key, sql_pairs)) == sorted(map(key, python_pairs)), "SQL and reference disagree"
    print(f"nodes: {len(nodes)}  trees: {len(prompts)}  pairs: {len(sql_pairs)}")
    print(f"duckdb sql:        {sql_s:8.3f} s")
    print(f"python per-node:   {python_s:8.3f} s")
    print(f"speed-up: {python_s / sql_s:.1f}x")


if __name__ == "__main__":
    main()
