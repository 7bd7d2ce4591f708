"""Each benchmark script runs in --quick mode, in this process (its main(argv)), and prints
the Markdown table of what it measures: the rows it promises, numbers in them. No timing
is asserted; the scripts themselves refuse to time variants whose outputs disagree."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration  # each script's whole --quick run

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

# script, extra arguments, rows its table must hold (the start of a cell)
CASES = [
    ("bench_kernels.py", [], ["prepare", "score", "patchify", "token_weights"]),
    ("bench_model.py", [], ["baseline", "model", "fast", "fast-bf16"]),
    ("bench_pipeline.py", [], ["end-to-end frames/s", "model-only frames/s"]),
    ("bench_pipeline.py", ["--source", "memory"], []),
    ("bench_pipeline.py", ["--source", "streams", "--streams", "3"], []),
    ("bench_train.py", [], ["teacher", "student"]),
    ("bench_train.py", ["--bf16"], ["teacher", "student"]),
    ("bench_train.py", ["--loading"], ["teacher, memory frames", "teacher, cache frames"]),
    ("bench_memory.py", ["--presets", "tiny"], ["train (cold)", "train (warm)", "evaluate", "tiny"]),
    ("bench_accuracy.py", [], ["constant", "frame difference", "authors' recipe", "sdmae default",
                               "1 / 0 (default)"]),
    ("bench_accuracy.py", ["--small-objects", "--scenes", "campus"], ["frame difference", "sdmae default"]),
]


def run_main(script: str, argv: list[str]) -> None:
    if str(BENCH) not in sys.path:  # as when run as a script: the shared _harness beside them
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(script[:-3], BENCH / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        assert module.main(argv) in (None, 0)
    finally:
        torch.set_num_threads(threads)  # the scripts choose their own


@pytest.mark.parametrize("script,extra,rows", CASES, ids=[f"{s}{' ' + ' '.join(e) if e else ''}" for s, e, _ in CASES])
def test_benchmark_quick(script, extra, rows, tmp_path, capsys):
    if script in ("bench_accuracy.py", "bench_memory.py"):
        extra = [*extra, "--work", str(tmp_path)]  # their datasets and trained runs
    run_main(script, ["--quick", *extra])
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert any(line.startswith("|---") for line in table), out
    body = [line for line in table if not line.startswith("|---")][1:]  # below the header
    assert body, out
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in body]
    for row in rows:
        assert any(c.startswith(row) for line in cells for c in line), f"no row {row!r} in\n{out}"
    assert any(re.fullmatch(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?x?", c) for line in cells for c in line), out
