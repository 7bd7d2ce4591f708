"""FastScorer equals the plain model (teacher, student, cls) on the tiny preset."""

import dataclasses

import pytest
import torch

from sdmae.config import get_preset
from sdmae.fast import FastScorer, optimize_for_inference, physical_cores
from sdmae.model import SDMAE, seeded_masks

RTOL = 1e-4  # relative to the largest magnitude of the reference output


def _trained_like(mixer: str, cls_head: bool) -> SDMAE:
    """Tiny model whose BatchNorm running stats moved away from (0, 1), so folding matters."""
    cfg = dataclasses.replace(get_preset("tiny").model, token_mixer=mixer, cls_head=cls_head, pos_embed=mixer == "linear")
    model = SDMAE(cfg, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    model.train()
    with torch.no_grad():
        for i in range(3):
            x = torch.rand(4, cfg.in_chans, *cfg.input_size, generator=g) * 2 - 1
            ids_keep, ids_restore, _ = seeded_masks(range(i, i + 4), cfg.num_tokens, cfg.mask_ratio)
            model(x, ids_keep, ids_restore)
    return model.eval()


def _close(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert (a - b).abs().max() <= RTOL * b.abs().max().clamp(min=1e-6)


@pytest.mark.parametrize("mixer", ["scatter", "shuffled", "linear"])
@pytest.mark.parametrize("cls_head", [False, True])
def test_fast_matches_model(mixer, cls_head):
    model = _trained_like(mixer, cls_head)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = FastScorer(model)
    cfg = model.cfg
    x = torch.rand(5, cfg.in_chans, *cfg.input_size, generator=torch.Generator().manual_seed(3)) * 2 - 1
    ids_keep, ids_restore, mask = seeded_masks(torch.arange(10, 15), cfg.num_tokens, cfg.mask_ratio, seed=4)
    with torch.no_grad():
        ref = model(x, ids_keep, ids_restore, student=True)
    out = fast(x, ids_keep, ids_restore, student=True)
    _close(out.teacher, ref.teacher)
    _close(out.student, ref.student)
    assert torch.equal(out.mask, mask) and torch.equal(out.mask, ref.mask)
    if cls_head:
        _close(out.cls_logit, ref.cls_logit)
    else:
        assert out.cls_logit is None
    assert fast(x, ids_keep, ids_restore, student=False).student is None
    # the trained model is left as it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fast_generator_and_errors():
    model = _trained_like("scatter", False)
    fast = optimize_for_inference(model)
    cfg = model.cfg
    x = torch.zeros(2, cfg.in_chans, *cfg.input_size)
    a = fast(x, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        b = model(x, generator=torch.Generator().manual_seed(5))
    _close(a.teacher, b.teacher)
    with pytest.raises(ValueError):
        fast(x)
    with pytest.raises(ValueError):
        fast(torch.zeros(2, cfg.in_chans, 8, 8), *seeded_masks([0, 1], cfg.num_tokens, cfg.mask_ratio)[:2])
    with pytest.raises(RuntimeError):
        fast.train()
    fast.eval()  # allowed (Detector calls it)


def test_fast_in_detector():
    from sdmae.detector import Detector

    model = _trained_like("scatter", False)
    cfg = get_preset("tiny")
    frames = (torch.rand(10, 70, 100, 3, generator=torch.Generator().manual_seed(6)) * 255).byte().numpy()
    ref = Detector(model, cfg).score_frames(frames).raw
    got = Detector(FastScorer(model), cfg).score_frames(frames).raw
    assert abs(got - ref).max() <= RTOL * abs(ref).max()


def test_physical_cores():
    assert physical_cores() >= 1


def test_blocked_attention_is_attention():
    from sdmae.fast import _ATTENTION_BLOCK, _blocked_attention

    g = torch.Generator().manual_seed(8)
    T = 2 * _ATTENTION_BLOCK + 37  # a partial last block
    q, k, v = (torch.randn(2, 3, T, 16, generator=g) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(_blocked_attention(q, k, v), ref, atol=1e-5)
    low = _blocked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert low.dtype == torch.bfloat16 and (low.float() - ref).abs().max() < 0.05


def test_bf16_precision_stays_close():
    model = _trained_like("scatter", False)
    cfg = model.cfg
    x = torch.rand(4, cfg.in_chans, *cfg.input_size, generator=torch.Generator().manual_seed(9)) * 2 - 1
    ids_keep, ids_restore, _ = seeded_masks(torch.arange(4), cfg.num_tokens, cfg.mask_ratio)
    ref = FastScorer(model)(x, ids_keep, ids_restore)
    low = FastScorer(model, precision="bf16")
    assert low.precision == "bf16"
    out = low(x, ids_keep, ids_restore)
    assert out.teacher.dtype == torch.float32 and out.student.dtype == torch.float32
    for a, b in ((out.teacher, ref.teacher), (out.student, ref.student)):
        assert (a - b).abs().max() <= 3e-2 * b.abs().max()


def test_resolve_precision():
    from sdmae.fast import native_bf16, resolve_precision

    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("half")
    with pytest.raises(ValueError, match="precision"):
        FastScorer(_trained_like("scatter", False), precision="float32")


def test_float64_input_takes_the_indexing_path():
    model = _trained_like("scatter", False).double()
    cfg = model.cfg
    x = torch.rand(2, cfg.in_chans, *cfg.input_size, dtype=torch.float64) * 2 - 1
    ids_keep, ids_restore, _ = seeded_masks([0, 1], cfg.num_tokens, cfg.mask_ratio)
    with torch.no_grad():
        ref = model(x, ids_keep, ids_restore)
    out = FastScorer(model)(x, ids_keep, ids_restore)
    assert out.teacher.dtype == torch.float64
    assert (out.teacher - ref.teacher).abs().max() <= 1e-8 * ref.teacher.abs().max()
