"""The run report: a Markdown summary and PNG plots, built from the stages' metrics files."""

from pathlib import Path

COLUMNS = ("n", "reward_mean", "unsafe_rate", "refusal_rate", "accuracy", "goodness_refusal", "goodness_rubric",
           "format_ok_rate", "tokens_per_prompt")


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(rows: list[tuple[str, str, dict]]) -> str:
    """A Markdown table of (model, suite, metrics) rows over the metrics that occur."""
    columns = [c for c in COLUMNS if any(c in m for _, _, m in rows)]
    lines = ["| model | suite | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    lines += [f"| {model} | {suite} | " + " | ".join(_cell(m.get(c)) for c in columns) + " |"
              for model, suite, m in rows]
    return "\n".join(lines)


def iteration_rows(heldout: dict[str, dict]) -> list[dict]:
    """One row per model (sft = iteration 0) for `dvc plots`: the held-out numbers that tell the story."""
    rows = []
    for iteration, (model, suites) in enumerate(heldout.items()):
        row = {"iteration": iteration, "model": model, "reward_mean": suites["all"]["reward_mean"]}
        for suite, metric in (("heldout_jailbreak", "unsafe_rate"), ("heldout_harmful", "unsafe_rate"),
                              ("heldout_benign_sensitive", "refusal_rate"), ("heldout_benign_novel", "refusal_rate"),
                              ("heldout_math", "accuracy")):
            if metric in suites.get(suite, {}):
                row[f"{suite.removeprefix('heldout_')}_{metric}"] = suites[suite][metric]
        rows.append(row)
    return rows


def plot_iterations(heldout: dict[str, dict], path: Path) -> None:
    """Safety and helpfulness of sft, dpo_1..K on the held-out suites, one line per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(heldout)
    series = {
        "reward (all)": [heldout[m]["all"]["reward_mean"] for m in models],
        "unsafe rate (jailbreak)": [heldout[m].get("heldout_jailbreak", {}).get("unsafe_rate") for m in models],
        "unsafe rate (harmful)": [heldout[m].get("heldout_harmful", {}).get("unsafe_rate") for m in models],
        "refusal rate (benign)": [heldout[m].get("heldout_benign_sensitive", {}).get("refusal_rate") for m in models],
        "refusal rate (novel benign)": [heldout[m].get("heldout_benign_novel", {}).get("refusal_rate")
                                        for m in models],
        "accuracy (math)": [heldout[m].get("heldout_math", {}).get("accuracy") for m in models],
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(models, series["reward (all)"], marker="o")
    left.set_title("held-out mean safety-informed reward")
    for name, values in series.items():
        if name != "reward (all)" and any(v is not None for v in values):
            right.plot(models, [v if v is not None else float("nan") for v in values], marker="o", label=name)
    right.set_title("held-out rates")
    right.set_ylim(-0.02, 1.02)
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_search(curve: list[dict], path: Path) -> None:
    """Held-out reward against generated tokens per prompt, one line per search method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(row["method"] for row in curve):
        points = sorted((r["tokens_per_prompt"], r["reward_mean"], r["budget"]) for r in curve if r["method"] == method)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method)
        for x, y, budget in points:
            ax.annotate(str(budget), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("generated tokens per prompt")
    ax.set_ylabel("held-out mean reward")
    ax.set_title("test-time scaling with the PRM")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_report(params: dict, data: dict, trees: dict[str, dict], pairs: dict[str, dict], heldout: dict[str, dict],
                  search: dict[str, dict], evaluation: dict[str, dict], prm: dict) -> str:
    """The Markdown summary of a run."""
    k = len(trees)
    lines = ["# STAIR run report", "",
             f"Base model `{params['base']['model']}`; {k} self-improvement iterations; reward "
             f"`{params['reward']['name']}` (k1={params['reward']['k1']}, k2={params['reward']['k2']}); judges "
             f"safety=`{params['judges']['safety']}`, helpfulness=`{params['judges']['helpfulness']}`; SI-MCTS "
             f"c={params['mcts']['c']}, m={params['mcts']['children']}, {params['mcts']['iterations']} iterations "
             f"per tree; DPO beta={params['dpo']['beta']}, lr={params['dpo']['learning_rate']}.", "",
             "## Data and trees", "",
             f"{data.get('prompts', 0)} prompts ({data.get('by_split', {})}), {data.get('sft_examples', 0)} SFT examples.",
             "", "| iteration | trees | nodes | terminal share | mean root value | nodes/s | pairs |",
             "|---|---|---|---|---|---|---|"]
    for it, t in trees.items():
        lines.append(f"| {it} | {t.get('trees')} | {t.get('nodes')} | {t.get('terminal_share')} | "
                     f"{t.get('mean_root_value')} | {t.get('nodes_per_s', '–')} | {pairs.get(it, {}).get('pairs', '–')} |")
    lines += ["", "## Held-out check per model", "", "![iterations](iterations.png)", "",
              table([(m, s, v) for m, suites in heldout.items() for s, v in suites.items()])]
    if prm:
        lines += ["", "## Process reward model", "",
                  f"Sibling ranking accuracy on held-out trees: {prm.get('validation_sibling_accuracy')} "
                  f"over {prm.get('validation_sibling_pairs')} pairs."]
    if search:
        lines += ["", "## Test-time scaling (final model + PRM, held-out sets)", "", "![search](search.png)", "",
                  table([(key, "all", v["all"]) for key, v in search.items()])]
    if evaluation:
        lines += ["", "## Benchmarks", "",
                  table([(m, s, v) for m, suites in evaluation.items() for s, v in suites.items()
                         if not s.startswith("heldout")])]
    return "\n".join(lines) + "\n"
