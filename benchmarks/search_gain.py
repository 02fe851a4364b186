"""How much PRM best-of-N gains over greedy decoding, measured without the noise of one draw.

    python benchmarks/search_gain.py [--policy models/dpo/3] [--prm models/prm] [--samples 8]
                                     [--per-suite 24] [--temperature 0.2]

Samples `--samples` answers per held-out prompt once (search.* sampling settings of params.yaml unless
given), judges every one, scores every one with the PRM, and prints per budget n the expected reward of
best-of-n over every n-subset of the samples, next to greedy, a random sample (n = 1) and the oracle
(the best sample of the subset). The search stage draws one subset per prompt, so on 120 prompts its
best-of-N reward moves by about +-0.1 from seed to seed; this does not. Run `dvc repro prm` first.
"""

import argparse
import itertools
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from schemas import SeedPrompt
from stair.config import from_mapping
from stair.evaluation import evaluate_greedy, first_per_group, heldout_suite, judge_records
from stair.generation import BackendParams, Sampling, make_backend
from stair.judges import JudgeParams, build_judge
from stair.modeling import chat_prompt
from stair.prm import PRMScorer
from stair.reward import RewardParams
from stair.search import SearchParams, answer_scores, expected_best_of_n
from stair.store import read_artifact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=Path("models/dpo/3"))
    parser.add_argument("--prm", type=Path, default=Path("models/prm"))
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--per-suite", type=int, default=None, help="default: params.yaml search.per_suite")
    parser.add_argument("--temperature", type=float, default=None, help="default: params.yaml search.temperature")
    args = parser.parse_args()
    for path in (args.policy, args.prm):
        if not path.exists():
            raise SystemExit(f"{path} not found: run `dvc repro prm` first")
    raw = yaml.safe_load(Path("params.yaml").read_text())
    search = from_mapping(SearchParams, raw["search"], "params.yaml: search")
    backend_params = from_mapping(BackendParams, raw["backend"], "params.yaml: backend")
    reward = from_mapping(RewardParams, raw["reward"], "params.yaml: reward")
    judge_params = from_mapping(JudgeParams, raw["judges"], "params.yaml: judges")
    temperature = search.temperature if args.temperature is None else args.temperature

    prompts = [p for p in read_artifact(Path("data/prompts"), SeedPrompt) if p.split == "heldout"]
    prompts = first_per_group(prompts, args.per_suite or search.per_suite or len(prompts))
    backend = make_backend(args.policy, backend_params, seed=search.seed)
    judge = build_judge(judge_params, reward, backend_params, self_model=args.policy, policy=(args.policy, backend))
    texts = [chat_prompt(backend.tokenizer, p.text) for p in prompts]

    greedy = evaluate_greedy(backend, backend.tokenizer, prompts, judge, "greedy",
                             sampling=Sampling(0.0, max_new_tokens=search.max_response_tokens))
    greedy_rewards = [r.reward for r in greedy]
    sampling = Sampling(temperature, search.top_p, search.top_k, search.max_response_tokens)
    samples = backend.generate(texts, args.samples, sampling, "response")
    flat_prompts = [p for p, group in zip(prompts, samples) for _ in group]
    flat = [c.text for group in samples for c in group]
    judged = judge_records(flat_prompts, flat, [0] * len(flat), judge, "sample", heldout_suite)
    scorer = PRMScorer.from_path(args.prm, batch_size=search.prm_batch_size)
    scores = answer_scores(scorer, [p.text for p in flat_prompts], flat, search.aggregation)

    k = args.samples
    per_prompt = [(p, [r.reward for r in judged[i * k:(i + 1) * k]], scores[i * k:(i + 1) * k])
                  for i, p in enumerate(prompts)]
    print(f"{len(prompts)} held-out prompts, {k} samples each at temperature {temperature}, "
          f"aggregation {search.aggregation}")
    print(f"greedy: {statistics.mean(greedy_rewards):.3f}")
    n = 1
    while n <= k:
        by_suite: dict[str, list[float]] = defaultdict(list)
        oracle = []
        for prompt, rewards, prompt_scores in per_prompt:
            by_suite[heldout_suite(prompt)].append(expected_best_of_n(rewards, prompt_scores, n))
            oracle.append(statistics.mean(max(c) for c in itertools.combinations(rewards, n)))
        overall = statistics.mean(x for xs in by_suite.values() for x in xs)
        suites = "  ".join(f"{s.removeprefix('heldout_')} {statistics.mean(xs):.2f}" for s, xs in by_suite.items())
        print(f"E[best-of-{n}]: {overall:.3f}  (oracle {statistics.mean(oracle):.3f}; "
              f"vs greedy {overall - statistics.mean(greedy_rewards):+.3f})  {suites}")
        n *= 2


if __name__ == "__main__":
    main()
