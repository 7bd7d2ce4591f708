"""The examples are the teaching reference: run them so they never rot."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["01_motion_gradients.py", "03_masked_autoencoder.py", "04_self_distillation.py"])
def test_example_runs_and_writes_its_figure(tmp_path, name):
    figure = tmp_path / "figure.png"
    done = subprocess.run([sys.executable, str(EXAMPLES / name), str(figure)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert figure.stat().st_size > 1000
