"""The model fused for inference equals the model, and scores what sdmae 0.2 scored.

``fuse_for_inference`` folds BatchNorm into the q/k/v convs; ``set_precision``
switches the forward's compute dtype. ``data/scores_before_one_model.json``
holds frame scores computed by sdmae 0.2's separate inference model
(FastScorer) from weights drawn by key and shape with NumPy's seeded
generator, in the 0.2 state-dict layout (one grouped q/k/v conv).
"""

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sdmae.config import Config, get_preset
from sdmae.detector import Detector
from sdmae.hardware import native_bf16, physical_cores, resolve_precision
from sdmae.model import ATTENTION_BLOCK, SDMAE, blocked_attention, seeded_masks

RTOL = 1e-4  # relative to the largest magnitude of the reference output
BEFORE = Path(__file__).parent / "data" / "scores_before_one_model.json"


def _trained_like(mixer: str, cls_head: bool) -> SDMAE:
    """Tiny model whose BatchNorm running stats moved away from (0, 1), so folding matters."""
    cfg = dataclasses.replace(get_preset("tiny").model, token_mixer=mixer, cls_head=cls_head,
                              pos_embed=mixer == "linear")
    model = SDMAE(cfg, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    model.train()
    with torch.no_grad():
        for i in range(3):
            x = torch.rand(4, cfg.in_chans, *cfg.input_size, generator=g) * 2 - 1
            ids_keep, ids_restore, _ = seeded_masks(range(i, i + 4), cfg.num_tokens, cfg.mask_ratio)
            model(x, ids_keep, ids_restore)
    return model.eval()


def _close(a, b, rtol=RTOL):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert (a - b).abs().max() <= rtol * b.abs().max().clamp(min=1e-6)


@pytest.mark.parametrize("mixer", ["scatter", "shuffled", "linear"])
@pytest.mark.parametrize("cls_head", [False, True])
def test_fused_model_matches_the_model(mixer, cls_head):
    model = _trained_like(mixer, cls_head)
    fused = copy.deepcopy(model).fuse_for_inference()
    assert not any(name.endswith("bn.weight") for name, _ in fused.named_parameters())
    cfg = model.cfg
    x = torch.rand(5, cfg.in_chans, *cfg.input_size, generator=torch.Generator().manual_seed(3)) * 2 - 1
    ids_keep, ids_restore, mask = seeded_masks(torch.arange(10, 15), cfg.num_tokens, cfg.mask_ratio, seed=4)
    with torch.no_grad():
        ref = model(x, ids_keep, ids_restore, student=True)
    with torch.inference_mode():
        out = fused(x, ids_keep, ids_restore, student=True)
        assert fused(x, ids_keep, ids_restore, student=False).student is None
    _close(out.teacher, ref.teacher)
    _close(out.student, ref.student)
    assert torch.equal(out.mask, mask) and torch.equal(out.mask, ref.mask)
    if cls_head:
        _close(out.cls_logit, ref.cls_logit)
    else:
        assert out.cls_logit is None


def test_a_fused_model_refuses_to_train():
    fused = _trained_like("scatter", False).fuse_for_inference()
    with pytest.raises(RuntimeError, match="fused"):
        fused.train()
    fused.eval()  # allowed (Detector calls it)


def _weights_by_key(shapes: dict, seed: int) -> dict:
    """The make-up of the stored scores: NumPy draws by key and shape, in the file's order."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.from_numpy(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            state[key] = torch.from_numpy((rng.standard_normal(shape) * 0.2).astype(np.float32))
    return state


@pytest.mark.parametrize("variant", ["shuffled", "scatter_cls"])
def test_scores_equal_those_of_sdmae_0_2_from_its_checkpoint_layout(variant):
    """One model now scores: from a 0.2 state dict (grouped q/k/v conv, interleaved
    BatchNorm), the fused model gives 0.2's FastScorer scores: bit for bit on the machine
    that made the file, except that the classification head's term is now added in
    float32 inside kernels.score (4e-8 relative, "scatter_cls"); a CPU with other SIMD
    kernels may round differently, hence the tolerance."""
    stored = json.loads(BEFORE.read_text())[variant]
    cfg = Config.from_dict(stored["config"])
    state = _weights_by_key(stored["shapes"], seed=11)
    assert any(key.endswith("conv_proj.conv.weight") for key in state)  # the old layout
    model = SDMAE(cfg.model)
    model.load_state_dict(state)
    model.fuse_for_inference()
    frames = np.random.default_rng(7).integers(0, 256, (12, 48, 72, 3), dtype=np.uint8)
    got = Detector(model, cfg).score_frames(frames).raw
    np.testing.assert_allclose(got, stored["raw"], rtol=1e-6, atol=0)


def test_generator_masks_and_input_errors():
    model = _trained_like("scatter", False)
    fused = copy.deepcopy(model).fuse_for_inference()
    cfg = model.cfg
    x = torch.zeros(2, cfg.in_chans, *cfg.input_size)
    with torch.no_grad():
        a = fused(x, generator=torch.Generator().manual_seed(5))
        b = model(x, generator=torch.Generator().manual_seed(5))
    _close(a.teacher, b.teacher)
    with pytest.raises(ValueError):
        fused(x)
    with pytest.raises(ValueError):
        fused(torch.zeros(2, cfg.in_chans, 8, 8), *seeded_masks([0, 1], cfg.num_tokens, cfg.mask_ratio)[:2])


def test_fused_model_in_detector():
    model = _trained_like("scatter", False)
    cfg = get_preset("tiny")
    frames = (torch.rand(10, 70, 100, 3, generator=torch.Generator().manual_seed(6)) * 255).byte().numpy()
    ref = Detector(model, cfg).score_frames(frames).raw
    got = Detector(copy.deepcopy(model).fuse_for_inference(), cfg).score_frames(frames).raw
    assert abs(got - ref).max() <= RTOL * abs(ref).max()


def test_physical_cores():
    assert physical_cores() >= 1


def test_blocked_attention_is_attention():
    g = torch.Generator().manual_seed(8)
    T = 2 * ATTENTION_BLOCK + 37  # a partial last block
    q, k, v = (torch.randn(2, 3, T, 16, generator=g) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(blocked_attention(q, k, v), ref, atol=1e-5)
    low = blocked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert low.dtype == torch.bfloat16 and (low.float() - ref).abs().max() < 0.05


def test_bf16_precision_stays_close():
    fused = _trained_like("scatter", False).fuse_for_inference()
    cfg = fused.cfg
    x = torch.rand(4, cfg.in_chans, *cfg.input_size, generator=torch.Generator().manual_seed(9)) * 2 - 1
    ids_keep, ids_restore, _ = seeded_masks(torch.arange(4), cfg.num_tokens, cfg.mask_ratio)
    with torch.inference_mode():
        ref = fused(x, ids_keep, ids_restore)
        out = fused.set_precision("bf16")(x, ids_keep, ids_restore)
    assert fused.precision == "bf16"
    assert out.teacher.dtype == torch.float32 and out.student.dtype == torch.float32
    for a, b in ((out.teacher, ref.teacher), (out.student, ref.student)):
        assert (a - b).abs().max() <= 3e-2 * b.abs().max()


def test_resolve_precision():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("half")
    with pytest.raises(ValueError, match="precision"):
        _trained_like("scatter", False).set_precision("float32")


def test_float64_input_takes_the_indexing_path():
    model = _trained_like("scatter", False).double()
    cfg = model.cfg
    x = torch.rand(2, cfg.in_chans, *cfg.input_size, dtype=torch.float64) * 2 - 1
    ids_keep, ids_restore, _ = seeded_masks([0, 1], cfg.num_tokens, cfg.mask_ratio)
    with torch.no_grad():
        ref = model(x, ids_keep, ids_restore)
        out = copy.deepcopy(model).fuse_for_inference()(x, ids_keep, ids_restore)
    assert out.teacher.dtype == torch.float64
    assert (out.teacher - ref.teacher).abs().max() <= 1e-8 * ref.teacher.abs().max()
