"""Pair extraction speed: DuckDB SQL vs per-node Python walks, on a synthetic nodes table.

    python benchmarks/pairs_speed.py [--nodes 100000] [--tokenizer models/sft]

Builds a random forest of SI-MCTS-shaped trees (~100k nodes), checks that every method selects the
same pairs, and prints the times and ratios of:
  - the SQL query (reads the parquet artifact, stored token counts, Arrow out),
  - the same selection as a straightforward per-node Python loop over the stored counts,
  - the official code's way: a per-node loop that tokenizes prompt + path for each node's length
    (only with --tokenizer, e.g. models/sft after `dvc repro sft`).
Row validation (pydantic) is left out of every timing: it is the same work for all of them.
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

import duckdb

from schemas import SeedPrompt, TreeNode
from stair.pairs import PairParams, step_pair_table, step_pairs_reference
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
            step = f"<|Reasoning_step|>Title: Step {row['node_id']}\nsome reasoning text {rng.random()}<|/Reasoning_step|>"
            nodes.append(TreeNode(tree_id=f"t{t}", prompt_id=f"p{t}", iteration=1, kind=kind,
                                  step="" if row["parent_id"] is None else step, visits=visits,
                                  evaluations=min(visits, 1), value_sum=value * visits, value=value,
                                  reward=value if row["terminal"] else None, **row))
        t += 1
    return nodes, prompts


def key(pair: dict) -> tuple:
    return pair["prompt_id"], tuple(pair["prefix"]), pair["chosen"], pair["rejected"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--tokenizer", type=Path, help="a tokenizer folder, to also time the official-style loop")
    args = parser.parse_args()
    nodes, prompts = synthetic_nodes(args.nodes)
    params, reward = PairParams(max_tokens=10**9), RewardParams()  # no length cut: every method walks everything
    with tempfile.TemporaryDirectory() as tmp:
        nodes_dir, prompts_dir = Path(tmp) / "nodes", Path(tmp) / "prompts"
        write_artifact(nodes_dir, nodes, TreeNode, stage="bench", params={})
        write_artifact(prompts_dir, prompts, SeedPrompt, stage="bench", params={})
        start = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"create view nodes as select * from read_parquet('{nodes_dir / DATA_FILE}')")
        con.execute(f"create view prompts as select * from read_parquet('{prompts_dir / DATA_FILE}')")
        sql_pairs = step_pair_table(con, params, reward)
        sql_s = time.perf_counter() - start

    start = time.perf_counter()
    python_pairs = step_pairs_reference(nodes, prompts, params, reward)
    python_s = time.perf_counter() - start
    assert sorted(map(key, sql_pairs.to_pylist())) == sorted(map(key, python_pairs)), "SQL and reference disagree"

    print(f"nodes: {len(nodes)}  trees: {len(prompts)}  pairs: {sql_pairs.num_rows}")
    print(f"duckdb sql (stored token counts):        {sql_s:8.3f} s")
    print(f"python per-node loop (stored counts):    {python_s:8.3f} s   sql speed-up {python_s / sql_s:5.1f}x")
    if args.tokenizer:
        from transformers import AutoTokenizer

        from stair.modeling import chat_prompt

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)

        def count(prompt: str, response: str) -> int:
            return len(tokenizer(chat_prompt(tokenizer, prompt) + response, add_special_tokens=False)["input_ids"])

        start = time.perf_counter()
        official = step_pairs_reference(nodes, prompts, params, reward, count_tokens=count)
        official_s = time.perf_counter() - start
        assert len(official) == sql_pairs.num_rows
        print(f"official-style loop (tokenizes per node): {official_s:8.3f} s   sql speed-up {official_s / sql_s:5.1f}x")


if __name__ == "__main__":
    main()
