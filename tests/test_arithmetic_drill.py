"""benchmarks/arithmetic_drill.py runs and prints its learning curve (two steps, seconds)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_drill_prints_loss_and_result_digit_accuracy() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/arithmetic_drill.py"), "--steps", "2",
                           "--batch-size", "2", "--length", "32"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("step")]
    assert len(lines) == 2 and "result-digit accuracy" in lines[-1]
    accuracy = float(lines[-1].split("result-digit accuracy")[1].split()[0])
    assert 0.0 <= accuracy <= 1.0


def test_drilled_operations_are_the_worlds_column_work() -> None:
    """Operands and results stay in the world's range, and each is written as the teacher writes it."""
    import random
    import re

    sys.path.insert(0, str(REPO / "benchmarks"))
    from arithmetic_drill import operation

    from stair.world import arithmetic

    rng = random.Random(0)
    for _ in range(300):
        work = operation(rng)
        x, op, y = re.fullmatch(r"(\d+)([-+*])(\d+):", work.splitlines()[0]).groups()
        assert work == arithmetic.column_work(int(x), op, int(y))
        result = int(work.splitlines()[-1].split("=")[1])
        assert all(1 <= v <= arithmetic.MAX_VALUE for v in (int(x), int(y), result)), work
