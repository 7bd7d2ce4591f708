"""Detector: deterministic, batch-independent, streaming equals offline."""

import numpy as np
import pytest

from sdmae.data import load_dataset, read_video
from sdmae.detector import Detector, StreamScorer


@pytest.fixture(scope="module")
def detector(tiny_run):
    # float32: the batch- and stream-independence below holds to 1e-5 there; bf16
    # rounding turns GEMM-blocking differences into ~1e-3 (tested separately)
    return Detector.load(tiny_run, precision="fp32")


@pytest.fixture(scope="module")
def clip(tiny_data):
    return read_video(load_dataset(tiny_data, "avenue", "test")[0].source)[:30]


def test_same_run_scores_the_same_video_identically(detector, clip):
    a, b = detector.score_frames(clip), detector.score_frames(clip)
    assert np.array_equal(a.raw, b.raw)
    assert a.raw.shape == (len(clip),)


def test_scores_do_not_depend_on_the_batch(detector, clip):
    big = detector.score_frames(clip).raw
    small = Detector(detector.model, detector.cfg.changed(score={"batch_size": 4})).score_frames(clip).raw
    np.testing.assert_allclose(small, big, rtol=1e-5)


def test_streaming_equals_offline_before_smoothing(detector, clip):
    offline = detector.score_frames(clip)
    streamed = list(detector.stream(iter(clip)))
    assert [s.index for s in streamed] == list(range(len(clip)))
    np.testing.assert_allclose([s.raw for s in streamed], offline.raw, rtol=1e-5)


def test_a_video_shorter_than_the_reach_streams_as_offline(detector, clip):
    short = clip[:detector.reach - 1]  # no frame ever has its later frames: all scored at the close
    streamed = [s.raw for s in detector.stream(iter(short))]
    np.testing.assert_allclose(streamed, detector.score_frames(short).raw, rtol=1e-5)
    assert len(streamed) == len(short)


def test_several_streams_batched_through_one_model(detector, clip):
    scorer = StreamScorer(detector)
    got = {"a": [], "b": []}
    for t in range(len(clip)):
        for sid, item in scorer.push_many({"a": clip[t], "b": clip[::-1][t]}):
            got[sid].append(item.raw)
    got["a"] += [s.raw for s in scorer.close("a")]
    got["b"] += [s.raw for s in scorer.close("b")]
    np.testing.assert_allclose(got["a"], detector.score_frames(clip).raw, rtol=1e-5)
    np.testing.assert_allclose(got["b"], detector.score_frames(clip[::-1]).raw, rtol=1e-5)


def test_push_many_shares_forward_passes(detector, clip):
    import torch

    sizes, inner = [], detector.model

    class Counting(torch.nn.Module):
        def forward(self, x, *args, **kw):
            sizes.append(x.shape[0])
            return inner(x, *args, **kw)

    detector.model = Counting()
    try:
        scorer = StreamScorer(detector)
        got = [scorer.push_many({"a": clip[t], "b": clip[t], "c": clip[t]}) for t in range(10)]
    finally:
        detector.model = inner
    # once frame t+3 has arrived, frame t of all three streams goes through one pass
    assert sizes and all(size % 3 == 0 for size in sizes) and max(sizes) >= 3
    flat = [item for batch in got for item in batch]
    assert [sid for sid, _ in flat[:3]] == ["a", "b", "c"]


def test_maps_have_the_model_size(detector, clip):
    s = detector.score_frames(clip[:5], with_maps=True)
    assert s.maps.shape == (5,) + detector.size
    assert np.isfinite(s.maps).all() and (s.maps >= 0).all()


def test_missing_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no student.pt"):
        Detector.load(tmp_path)


@pytest.mark.slow  # about a minute where the CPU has no native bf16
def test_bf16_scores_stay_close_to_fp32(tiny_run, detector, clip):
    low = Detector.load(tiny_run, precision="bf16")
    assert low.precision == "bf16" and detector.precision == "fp32"
    ref = detector.score_frames(clip).raw
    got = low.score_frames(clip).raw
    np.testing.assert_allclose(got, ref, rtol=5e-3)
    # what AUC sees: the frames' order barely moves
    assert np.corrcoef(got, ref)[0, 1] > 0.99
    streamed = [s.raw for s in low.stream(iter(clip))]
    np.testing.assert_allclose(streamed, got, rtol=5e-3)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_backends_give_the_same_scores(tiny_run, clip, monkeypatch, precision):
    """prepare is bit-identical in the twin and the kernel, so even bf16, which would round
    last-bit input differences apart, leaves only the score sums' order: ~1e-6."""
    from sdmae import kernels

    if "cpp" not in kernels.available_backends():
        pytest.skip("sdmae._C not built")
    low = Detector.load(tiny_run, precision=precision)
    scores = {}
    for backend in ("numpy", "cpp"):
        monkeypatch.setenv("SDMAE_BACKEND", backend)
        scores[backend] = low.score_frames(clip).raw
    np.testing.assert_allclose(scores["numpy"], scores["cpp"], rtol=1e-5)


def test_auto_precision_and_bad_precision(tiny_run):
    from sdmae.hardware import native_bf16

    assert Detector.load(tiny_run).precision == ("bf16" if native_bf16("cpu") else "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        Detector.load(tiny_run, precision="int8")


def test_cpu_forward_batch_is_capped_by_tokens(tiny_run):
    from sdmae.config import get_preset
    from sdmae.detector import CPU_TOKENS_PER_FORWARD
    from sdmae.model import SDMAE

    for preset in ("tiny", "avenue", "ped2"):
        cfg = get_preset(preset)
        det = Detector(SDMAE(cfg.model), cfg)
        assert det.batch_size == min(cfg.score.batch_size, max(1, CPU_TOKENS_PER_FORWARD // cfg.model.num_tokens))
    cfg = get_preset("avenue")
    assert Detector(SDMAE(cfg.model), cfg).batch_size == 8
    assert Detector(SDMAE(cfg.model), cfg.changed(score={"batch_size": 3})).batch_size == 3


needs_cuda = pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_scores_match_cpu(tiny_run, detector, clip, precision):
    import torch

    ref = detector.score_frames(clip).raw  # CPU, float32
    gpu = Detector.load(tiny_run, device="cuda", precision=precision)
    assert gpu.precision == precision and gpu.batch_size == gpu.cfg.score.batch_size  # no CPU cap
    got = gpu.score_frames(clip).raw
    rtol = 5e-3 if precision == "fp32" else 2e-2  # TF32 convolutions / bf16 on the GPU
    np.testing.assert_allclose(got, ref, rtol=rtol)
    # from uint8 frames already on the GPU: CUDA prepare and score kernels
    frames = torch.as_tensor(clip).cuda()
    centres = np.arange(len(clip))
    raw, maps = gpu.score_batch(frames, centres, centres, with_maps=True)
    np.testing.assert_allclose(raw, got, rtol=rtol)
    assert maps.shape == (len(clip),) + gpu.size
