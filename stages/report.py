"""report stage: a readable summary of the run in reports/ (Markdown + PNG plots).

    dvc repro report      # or: python -m stages.report

Reads the metrics files the other stages wrote (and the SI-MCTS speed from timings/mcts); writes reports/report.md, reports/iterations.png
(safety and helpfulness over iterations), reports/search.png (reward against tokens per prompt) and
plots/iterations.json (the same curves for `dvc plots show`).
"""

import json
from pathlib import Path

from stages.common import log, loop_items, raw_sections, stage_main
from stair.report import iteration_rows, plot_iterations, plot_search, render_report
from stair.store import atomic_write_text, write_json

OUT = Path("reports")


def _load(path: Path) -> dict | list:
    return json.loads(path.read_text()) if path.exists() else {}


@stage_main
def main() -> None:
    iterations = list(loop_items())
    heldout = {name: _load(Path(f"metrics/heldout/{name}.json")) for name in
               ["sft", *(f"dpo_{k}" for k in iterations)]}
    trees = {k: {**_load(Path(f"metrics/mcts/{k}.json")), **_load(Path(f"timings/mcts/{k}.json"))} for k in iterations}
    pairs = {k: _load(Path(f"metrics/pairs/{k}.json")) for k in iterations}
    search_curve = _load(Path("plots/search.json"))
    text = render_report(raw_sections("base", "reward", "judges", "mcts", "dpo"), _load(Path("metrics/data.json")), trees, pairs, heldout,
                         _load(Path("metrics/search.json")), _load(Path("metrics/eval.json")),
                         _load(Path("metrics/prm.json")))
    plot_iterations(heldout, OUT / "iterations.png")
    if search_curve:
        plot_search(search_curve, OUT / "search.png")
    atomic_write_text(OUT / "report.md", text)
    write_json(Path("plots/iterations.json"), iteration_rows(heldout))
    log.info("wrote %s", OUT / "report.md")


if __name__ == "__main__":
    main()
