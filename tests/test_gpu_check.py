"""benchmarks/gpu_check.py in its CPU dry mode: every step runs (or says why not) and the report is written."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_dry_run_trains_both_dtypes_judges_them_and_says_what_it_skipped(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}  # the CPU mode, even on a GPU host
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--dry-run", "--workdir",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = [s["step"] for s in report["steps"]]
    assert steps == ["seed 0: world and base model", "seed 0: SFT in fp32",
                     "seed 0: held-out greedy of the fp32 SFT (fp32 decoding)", "seed 0: SFT in bf16",
                     "seed 0: held-out greedy of the bf16 SFT (fp32 decoding)",
                     "seed 0: held-out greedy, transformers backend in bf16",
                     "seed 0: SI-MCTS, transformers bf16, lock-step",
                     "seed 0: SI-MCTS, transformers bf16, no tick barrier"]
    assert report["steps"][-1]["same_trees_as_lock_step"] in (True, False) and report["steps"][-1]["nodes"] > 0
    assert all(r["n"] > 0 and r["format_ok_rate"] is not None for r in report["runs"]["fp32"] + report["runs"]["bf16"])
    skipped = "\n".join(report["skipped"])
    assert "bf16 training: no GPU" in skipped and "seeds [1]" in skipped
    if importlib.util.find_spec("vllm") is None:
        assert "vLLM backend: vllm is not installed" in skipped
    assert "skipped:" in done.stdout and "fewer than 2 seeds" in done.stdout
