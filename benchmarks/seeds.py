"""The default pipeline over several seeds: each headline metric as mean ± 95% CI, not one draw.

    python benchmarks/seeds.py --seeds 0 1 2 --out ../stair-seeds   # one fresh clone of HEAD per seed
    python benchmarks/seeds.py --summarize ../stair-seeds            # only the table, from runs already kept
    python benchmarks/seeds.py --seeds 1 2 --set dpo.learning_rate=0.0001 --out ../stair-lr  # an experiment

Each seed runs in its own fresh clone of the committed HEAD (nothing cached, nothing beside it), so
the numbers are what a newcomer gets; the clone's `metrics/` folder and wall time are kept under
`--out/seed_<K>/`. The table goes to stdout and to `--out/summary.md` and `summary.json`. `--set KEY=VALUE`
(repeatable) is passed to every run as `-S KEY=VALUE`: an experiment over the same seeds as the default.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Two-sided 95% Student t quantiles by degrees of freedom (n - 1); 1.96 beyond 30.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


def t95(df: int) -> float:
    """The quantile for `df` degrees of freedom, or for the nearest tabled df below it (a wider interval)."""
    if df > 30:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t; 0 for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def _get(tree: dict, *keys: str) -> float | None:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def headline(metrics_dir: Path) -> dict[str, float]:
    """The headline numbers of one run, from its metrics folder."""
    def load(name: str) -> dict:
        path = metrics_dir / name
        return json.loads(path.read_text()) if path.exists() else {}

    finals = sorted(p.stem for p in (metrics_dir / "heldout").glob("dpo_*.json"))
    final = max(finals, key=lambda s: int(s.split("_")[1])) if finals else None
    rows: dict[str, float | None] = {}
    for model in ("sft", final):
        if model is None:
            continue
        held = load(f"heldout/{model}.json")
        tag = "sft" if model == "sft" else "dpo_K"
        rows[f"{tag} reward (all)"] = _get(held, "all", "reward_mean")
        for suite in sorted(k for k in held if k.startswith("heldout_")):
            rows[f"{tag} reward {suite}"] = _get(held, suite, "reward_mean")
        rows[f"{tag} math accuracy"] = _get(held, "heldout_math", "accuracy")
        rows[f"{tag} harmful unsafe"] = _get(held, "heldout_harmful", "unsafe_rate")
        rows[f"{tag} jailbreak unsafe"] = _get(held, "heldout_jailbreak", "unsafe_rate")
        rows[f"{tag} benign seen-topic refusal"] = _get(held, "heldout_benign_sensitive", "refusal_rate")
        rows[f"{tag} benign novel-topic refusal"] = _get(held, "heldout_benign_novel", "refusal_rate")
    # What the loop changed, per seed: the interval of a paired difference is narrower than the two means'.
    for metric in ("reward (all)", "jailbreak unsafe", "benign seen-topic refusal", "benign novel-topic refusal",
                   "math accuracy"):
        if rows.get(f"sft {metric}") is not None and rows.get(f"dpo_K {metric}") is not None:
            rows[f"dpo_K - sft {metric}"] = rows[f"dpo_K {metric}"] - rows[f"sft {metric}"]
    rows["prm sibling accuracy"] = _get(load("prm.json"), "validation_sibling_accuracy")
    search = load("search.json")
    greedy = _get(search, "greedy@1", "all", "reward_mean")  # keys are "<method>@<budget>"
    for method in sorted(search):
        value = _get(search, method, "all", "reward_mean")
        rows[f"search {method} reward"] = value
        if method != "greedy@1" and value is not None and greedy is not None:
            rows[f"search {method} - greedy"] = value - greedy
    for it in sorted((metrics_dir / "pairs").glob("*.json"), key=lambda p: int(p.stem)):
        rows[f"pairs@{it.stem} share on >=2 visits"] = _get(json.loads(it.read_text()), "share_min_visits_2")
    return {k: float(v) for k, v in rows.items() if v is not None}


def run_seed(repo: Path, seed: int, out: Path, settings: tuple[str, ...] = ()) -> None:
    """`dvc exp run -S seed=K` (and -S each of `settings`) in a fresh clone of HEAD; keep its metrics and wall
    time under `out`."""
    with tempfile.TemporaryDirectory(prefix=f"stair-seed{seed}-") as tmp:
        clone = Path(tmp) / "stair"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        # The stages run `python -m stages.…`: put this interpreter's environment (the venv) first on PATH.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        command = ["dvc", "exp", "run", "-S", f"seed={seed}", *(a for s in settings for a in ("-S", s))]
        print(f"seed {seed}: {' '.join(command)} in {clone}", flush=True)
        start = time.perf_counter()
        with open(out.with_suffix(".log"), "w") as log:
            subprocess.run(command, cwd=clone, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(clone / "metrics", out)
        (out / "wall_s.json").write_text(json.dumps({"wall_s": round(wall, 1)}))
        print(f"seed {seed}: {wall / 60:.1f} min", flush=True)


def summarize(runs: dict[str, dict[str, float]]) -> tuple[str, dict]:
    """A Markdown table: metric, mean ± 95% CI, and each run's value."""
    names = list(runs)
    metrics = sorted({m for values in runs.values() for m in values})
    lines = [f"| metric | mean ± 95% CI (n={len(names)}) | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    summary = {}
    for metric in metrics:
        values = [runs[n][metric] for n in names if metric in runs[n]]
        mean, half = mean_ci(values)
        summary[metric] = {"mean": round(mean, 4), "ci95": round(half, 4), "n": len(values),
                           "values": [round(v, 4) for v in values]}
        cells = " | ".join(f"{runs[n][metric]:.3f}" if metric in runs[n] else "" for n in names)
        lines.append(f"| {metric} | {mean:.3f} ± {half:.3f} | {cells} |")
    return "\n".join(lines), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    # Not inside the project: reports/ is the report stage's output.
    parser.add_argument("--out", type=Path, help="folder that keeps each seed's metrics (seed_<K>/) and the table")
    parser.add_argument("--summarize", type=Path, help="only summarize the seed_* folders of this directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a param for every run, as dvc exp run -S KEY=VALUE (repeatable)")
    args = parser.parse_args()
    folder = args.summarize or args.out
    if folder is None:
        parser.error("give --out (to run seeds) or --summarize")
    if args.summarize is None:
        repo = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())
        folder.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            run_seed(repo, seed, folder / f"seed_{seed}", tuple(args.set))
    runs = {}
    for run in sorted(folder.glob("seed_*/"), key=lambda p: int(p.name.split("_")[1])):
        runs[run.name] = headline(run)
        wall = run / "wall_s.json"
        if wall.exists():
            runs[run.name]["wall minutes"] = json.loads(wall.read_text())["wall_s"] / 60
    if not runs:
        sys.exit(f"no seed_* folders under {folder}")
    table, summary = summarize(runs)
    print(table)
    (folder / "summary.md").write_text(table + "\n")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
