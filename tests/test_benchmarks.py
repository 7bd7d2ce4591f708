"""Each benchmark script runs in --quick mode and prints a Markdown table (no timing assertions)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = ["bench_kernels.py", "bench_model.py", "bench_pipeline.py", "bench_train.py", "bench_accuracy.py"]


@pytest.mark.parametrize("script,extra", [(s, []) for s in SCRIPTS] + [
    ("bench_pipeline.py", ["--source", "memory"]), ("bench_pipeline.py", ["--source", "streams", "--streams", "3"]),
    ("bench_train.py", ["--bf16"])])
def test_benchmark_quick(script, extra, tmp_path):
    path = BENCH / script
    if script == "bench_accuracy.py":
        extra = [*extra, "--work", str(tmp_path)]  # its dev sets and trained runs
    if not path.is_file():
        pytest.skip(f"{script} not in this checkout")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([sys.executable, str(path), "--quick", *extra], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("|---") for line in lines), proc.stdout  # a Markdown table
    assert sum(line.startswith("|") for line in lines) >= 3, proc.stdout
