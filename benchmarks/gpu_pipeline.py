"""The whole pipeline on a GPU in bf16: every stage's wall time and the headline metrics.

    python benchmarks/gpu_pipeline.py --scale micro --workdir /tmp/gpu-micro
    python benchmarks/gpu_pipeline.py --scale default --workdir /tmp/gpu-default --out results/

Copies the repo's tracked files into `--workdir`, sets bf16 training (sft, dpo, prm) and bf16
generation (`backend.dtype`), plus the micro sizes of tests/test_pipeline.py with `--scale micro`,
and runs the stages in `dvc repro`'s order, one process each as DVC would, timing each. The order
comes from `dvc repro --dry` where DVC is installed, else from `--commands` (one stage command a
line, as `dvc repro --dry` prints them). Prints a table of stage times and writes gpu_pipeline.json.
On a machine without CUDA it runs the same stages on CPU in float32 (a check of the script itself).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_pipeline import MICRO, merge  # noqa: E402  (the micro configuration the e2e test runs)


def gpu_overrides(on_gpu: bool) -> dict:
    dtype = "bfloat16" if on_gpu else "float32"
    return {"sft": {"bf16": on_gpu}, "dpo": {"bf16": on_gpu}, "prm": {"bf16": on_gpu},
            "backend": {"device": "auto", "dtype": dtype}}


def copy_repo(workdir: Path) -> None:
    """The repo's files without its outputs; all files where there is no git checkout (a copied tree)."""
    outputs = ("data/", "models/", "metrics/", "plots/", "timings/")
    try:
        files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    except FileNotFoundError:
        files = []
    if not files:
        files = [p.relative_to(REPO).as_posix() for p in REPO.rglob("*")
                 if p.is_file() and not p.relative_to(REPO).parts[0].startswith(".")]
    for name in files:
        if (REPO / name).is_file() and (not name.startswith(outputs) or name.startswith("data/inputs/")):
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, workdir / name)


def stage_commands(commands: Path | None) -> list[str]:
    if commands is not None:
        lines = commands.read_text().splitlines()
    else:
        dry = subprocess.run([sys.executable, "-m", "dvc", "repro", "--dry", "--force"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.splitlines()
        lines = [line[2:] for line in dry if line.startswith("> ")]
    return [line.strip() for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=("micro", "default"), default="micro")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--commands", type=Path, help="stage commands in order (default: from dvc repro --dry)")
    parser.add_argument("--out", type=Path, help="also copy metrics and stage logs here")
    args = parser.parse_args()

    import torch

    on_gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    args.workdir.mkdir(parents=True, exist_ok=True)
    copy_repo(args.workdir)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = merge(params, MICRO) if args.scale == "micro" else params
    params = merge(params, gpu_overrides(on_gpu))
    (args.workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commands = stage_commands(args.commands)
    print(f"{args.scale} pipeline on {device}, {len(commands)} stages, bf16={on_gpu}", flush=True)

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "DVC_NO_ANALYTICS": "1"}
    timings, logs = [], args.workdir / "logs"
    logs.mkdir(exist_ok=True)
    out = args.out or args.workdir
    out.mkdir(parents=True, exist_ok=True)
    for command in commands:
        name = stage_name(command)
        start = time.perf_counter()
        with open(logs / f"{name}.log", "w") as log:
            done = subprocess.run([sys.executable, *command.split()[1:]], cwd=args.workdir, stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
        seconds = time.perf_counter() - start
        timings.append({"stage": name, "seconds": round(seconds, 1), "rc": done.returncode})
        print(f"{name:16s} {seconds:7.1f} s  rc={done.returncode}", flush=True)
        write_result(out, args.scale, device, on_gpu, timings, args.workdir / "metrics")
        if done.returncode != 0:
            print((logs / f"{name}.log").read_text()[-4000:], flush=True)
            break
    result = write_result(out, args.scale, device, on_gpu, timings, args.workdir / "metrics")
    print(f"total {result['total_s']} s")
    for key in ("prm.json", "search.json", "heldout/sft.json", "heldout/dpo_3.json"):
        if key in result["metrics"]:
            print(key, json.dumps(_headline(result["metrics"][key]))[:600])
    if args.out:
        shutil.make_archive(str(args.out / "logs"), "gztar", logs)


def stage_name(command: str) -> str:
    """"python -m stages.mcts --it 2 --policy m" -> "mcts@2"; "... stages.heldout --name sft ..." -> "heldout@sft"."""
    words = command.split()
    module = words[2].removeprefix("stages.")
    return f"{module}@{words[4]}" if len(words) > 4 else module


def write_result(out: Path, scale: str, device: str, on_gpu: bool, timings: list[dict], metrics_dir: Path) -> dict:
    """gpu_pipeline.json after every stage, so a run stopped at a time limit still reports what it did."""
    metrics = {p.relative_to(metrics_dir).as_posix(): json.loads(p.read_text())
               for p in sorted(metrics_dir.rglob("*.json"))}
    result = {"scale": scale, "device": device, "bf16": on_gpu, "stages": timings,
              "total_s": round(sum(t["seconds"] for t in timings), 1), "metrics": metrics}
    (out / "gpu_pipeline.json").write_text(json.dumps(result, indent=2))
    return result


def _headline(metric: dict) -> dict:
    """The overall numbers of a metrics file (its "all" row per key where there is one)."""
    if "all" in metric:
        return metric["all"]
    return {k: (v["all"] if isinstance(v, dict) and "all" in v else v) for k, v in metric.items()
            if not isinstance(v, (list, dict)) or "all" in v}


if __name__ == "__main__":
    main()
