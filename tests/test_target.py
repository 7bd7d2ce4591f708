"""make_target: the one target of training and scoring, the same in NumPy and torch."""

import numpy as np
import pytest
import torch

from sdmae.target import make_target


@pytest.mark.parametrize("normal", [-1.0, 0.0])
def test_target_is_frame_t_and_the_map_from_normal_to_one(normal):
    rng = np.random.default_rng(0)
    inputs = rng.uniform(-1, 1, (2, 9, 4, 6)).astype(np.float32)  # (N, 9, h, w)
    anomaly = np.zeros((2, 4, 6), np.float32)
    anomaly[0, 1:3, 2:4], anomaly[1, 0, 0] = 1.0, 0.5
    target = make_target(inputs, normal, anomaly)
    assert target.shape == (2, 4, 4, 6) and target.dtype == np.float32
    np.testing.assert_array_equal(target[:, :3], inputs[:, 3:6])  # frame t, the centre of t - k, t, t + k
    assert (target[0, 3, 1:3, 2:4] == 1).all() and target[1, 3, 0, 0] == (normal + 1) / 2
    assert (target[:, 3][anomaly == 0] == normal).all()
    np.testing.assert_array_equal(make_target(inputs, normal), make_target(inputs, normal, 0 * anomaly))
    as_torch = make_target(torch.from_numpy(inputs), normal, torch.from_numpy(anomaly))
    assert torch.is_tensor(as_torch) and np.array_equal(as_torch.numpy(), target)
    np.testing.assert_array_equal(make_target(inputs[1], normal, anomaly[1]), target[1])  # one sample: (4, h, w)


def test_target_written_into_a_reused_buffer():
    inputs = torch.rand(3, 9, 4, 4)
    buf = make_target(torch.zeros(3, 9, 4, 4), -1.0)
    assert make_target(inputs, -1.0, out=buf) is buf
    assert torch.equal(buf[:, :3], inputs[:, 3:6]) and (buf[:, 3] == -1).all()
