"""Helpers the test modules share (not tests, not fixtures: conftest.py holds those)."""

import importlib.util
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def tiny_config(**train):
    from sdmae.config import get_preset

    # calibration_fraction 0.2: 10 of the 48 frames of each training video, enough to hold back
    overrides = dict(epochs=2, student_epochs=1, batch_size=16, warmup_epochs=0.5, calibration_fraction=0.2)
    overrides.update(train)
    return get_preset("tiny", **overrides)


def run_example(name: str, figure: Path) -> dict:
    """Run ``examples/<name>``'s ``main(figure)`` in this process -> the numbers it returns."""
    spec = importlib.util.spec_from_file_location(f"example_{name[:2]}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    numbers = module.main(str(figure))
    assert figure.stat().st_size > 1000  # the figure was drawn
    return numbers
