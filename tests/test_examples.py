"""The examples are the teaching reference: run each one's main() and check what its text claims."""

import pytest
from helpers import run_example

pytestmark = pytest.mark.integration  # each example trains its model


def test_01_motion_puts_the_loss_on_the_moving_tokens(tmp_path):
    n = run_example("01_motion_gradients.py", tmp_path / "figure.png")
    assert n["weights_sum"] == pytest.approx(1.0, abs=1e-5)
    assert n["heaviest_4_share"] > 10 * 4 / n["tokens"]  # 4 of 96 tokens carry most of the loss


def test_03_the_masked_autoencoder_learns(tmp_path):
    n = run_example("03_masked_autoencoder.py", tmp_path / "figure.png")
    assert n["loss_last"] < 0.5 * n["loss_first"]


def test_04_frame_score_separates_and_the_discrepancy_alone_does_not_yet(tmp_path):
    # what the example's text says, measured: if the discrepancy starts to separate,
    # the text (and this test) must change with it
    n = run_example("04_self_distillation.py", tmp_path / "figure.png")
    assert n["frame_auc"] > 0.9
    assert n["discrepancy_auc"] < 0.6
