r"""report stage: a readable summary of the run (Markdown + PNG plots).

    dvc repro report      # or, without DVC:
    python -m stages.report --data-metrics metrics/data.json \
        --heldout-metrics metrics/heldout --mcts-metrics metrics/mcts \
        --mcts-timings timings/mcts --pairs-metrics metrics/pairs \
        --prm-metrics metrics/prm.json --search-metrics metrics/search.json \
        --search-plot plots/search.json --eval-metrics metrics/eval.json \
        --out reports --plot plots/iterations.json

Reads the metrics files the other stages wrote (per model or iteration: <folder>/<name>.json) and the
SI-MCTS speed; writes <out>/report.md, <out>/iterations.png (safety and helpfulness over iterations),
<out>/search.png (reward against tokens per prompt) and the plot (the same curves for `dvc plots show`).
"""

import json
from pathlib import Path

from stages.common import log, loop_items, loop_models, raw_sections, stage_args, stage_main
from stair.report import iteration_rows, plot_iterations, plot_search, render_report
from stair.store import atomic_write_text, write_json

ARGS = {"data_metrics": "the data stage's metrics", "heldout_metrics": "the folder of the held-out checks' metrics",
        "mcts_metrics": "the folder of the SI-MCTS metrics", "mcts_timings": "the folder of the SI-MCTS speeds",
        "pairs_metrics": "the folder of the pairs' metrics", "prm_metrics": "the prm stage's metrics",
        "search_metrics": "the search stage's metrics", "search_plot": "the search stage's plot",
        "eval_metrics": "the eval stage's metrics", "out": "the report folder to write",
        "plot": "the iterations plot to write"}


def _load(path: Path) -> dict | list:
    return json.loads(path.read_text()) if path.exists() else {}


@stage_main
def main() -> None:
    args = stage_args(__doc__, ARGS)
    iterations = list(loop_items())
    heldout = {name: _load(args.heldout_metrics / f"{name}.json") for name in loop_models()}
    trees = {k: {**_load(args.mcts_metrics / f"{k}.json"), **_load(args.mcts_timings / f"{k}.json")} for k in iterations}
    pairs = {k: _load(args.pairs_metrics / f"{k}.json") for k in iterations}
    search_curve = _load(args.search_plot)
    text = render_report(raw_sections("base", "reward", "judges", "mcts", "dpo"), _load(args.data_metrics), trees,
                         pairs, heldout, _load(args.search_metrics), _load(args.eval_metrics),
                         _load(args.prm_metrics))
    plot_iterations(heldout, args.out / "iterations.png")
    if search_curve:
        plot_search(search_curve, args.out / "search.png")
    atomic_write_text(args.out / "report.md", text)
    write_json(args.plot, iteration_rows(heldout))
    log.info("wrote %s", args.out / "report.md")


if __name__ == "__main__":
    main()
