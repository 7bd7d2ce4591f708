import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sdmae.config import ModelConfig, get_preset
from sdmae.model import (SDMAE, ModelOutput, complementary_masks, num_visible, patchify,
                         random_masking, seeded_masks, unpatchify, weighted_loss)

# a micro model: 4x6 = 24 tokens, runs in milliseconds
MICRO = ModelConfig(input_size=(16, 24), patch=4, enc_dim=32, enc_depth=2, enc_heads=4,
                    dec_dim=16, dec_depth=2, dec_heads=2)
VARIANTS = [(m, pe, cls) for m, pe, cls in itertools.product(("scatter", "shuffled", "linear"), (True, False),
                                                              (False, True))
            if not (m == "linear" and not pe)]  # linear without pos_embed is rejected by the config


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Micro shapes gain nothing from a 2nd thread, and on a busy shared core
    OpenMP barriers stall for whole time slices (measured 10-20x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def micro(**kw):
    return SDMAE(dataclasses.replace(MICRO, **kw), generator=torch.Generator().manual_seed(0))


def inputs(cfg, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, cfg.in_chans, *cfg.input_size, generator=g) * 2 - 1


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("name", ["tiny", "shanghaitech", "ubnormal", "avenue", "ped2"])
def test_preset_shapes(name):
    cfg = get_preset(name).model
    model = SDMAE(cfg).eval()
    L, P = model.num_tokens, cfg.patch ** 2 * cfg.out_chans
    assert model.grid == (cfg.input_size[0] // cfg.patch, cfg.input_size[1] // cfg.patch)
    assert L == model.grid[0] * model.grid[1]
    ids_keep, ids_restore, mask = seeded_masks([3], L, cfg.mask_ratio)
    with torch.no_grad():
        out = model(inputs(cfg, 1), ids_keep, ids_restore)
    assert isinstance(out, ModelOutput)
    assert out.teacher.shape == out.student.shape == (1, L, P)
    assert out.mask.shape == (1, L) and out.mask.sum() == L - L // 2
    assert torch.equal(out.mask, mask)
    assert out.cls_logit is None
    assert torch.isfinite(out.teacher).all() and torch.isfinite(out.student).all()


@pytest.mark.parametrize("mixer, pe, cls", VARIANTS)
def test_variants_forward_backward(mixer, pe, cls):
    model = micro(token_mixer=mixer, pos_embed=pe, cls_head=cls).train()
    x = inputs(model.cfg, 3)
    out = model(x, generator=torch.Generator().manual_seed(1))
    L, P = model.num_tokens, 4 * 4 * 4
    assert out.teacher.shape == out.student.shape == (3, L, P)
    assert out.mask.shape == (3, L) and (out.mask.sum(1) == L - num_visible(L, 0.5)).all()
    assert (out.cls_logit.shape == (3,)) if cls else out.cls_logit is None
    assert model(x, generator=torch.Generator().manual_seed(1), student=False).student is None
    loss = out.teacher.square().mean() + out.student.square().mean()
    if cls:
        loss = loss + out.cls_logit.square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_wrong_input_and_missing_masks():
    model = micro()
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 9, 16, 20), generator=torch.Generator())
    with pytest.raises(ValueError, match="generator"):
        model(inputs(model.cfg, 1))
    ids_keep, ids_restore, _ = seeded_masks([0], model.num_tokens, 0.5)
    with pytest.raises(ValueError, match="both"):
        model(inputs(model.cfg, 1), ids_keep)


@pytest.mark.parametrize("mixer, cls", [("scatter", False), ("scatter", True), ("shuffled", False), ("linear", True)])
@pytest.mark.parametrize("train", [True, False])
def test_masked_pixels_do_not_leak(mixer, cls, train):
    """Whatever hides under the mask cannot change the output (BatchNorm batch stats included)."""
    model = micro(token_mixer=mixer, cls_head=cls, pos_embed=mixer == "linear").train(train)
    cfg, p = model.cfg, model.cfg.patch
    x = inputs(cfg, 2)
    ids_keep, ids_restore, mask = seeded_masks([0, 1], model.num_tokens, 0.5)
    pix = mask.reshape(2, 1, *model.grid).repeat_interleave(p, 2).repeat_interleave(p, 3)  # (N, 1, h, w)
    y = torch.where(pix.bool(), inputs(cfg, 2, seed=9) * 5, x)
    with torch.no_grad():
        a, b = model(x, ids_keep, ids_restore), model(y, ids_keep, ids_restore)
    for u, v in zip(a[:2] + a[3:], b[:2] + b[3:]):
        if u is not None:
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)


def test_eval_batch_independent():
    model = micro(cls_head=True).eval()
    x = inputs(model.cfg, 4)
    keys = torch.tensor([10, 11, 12, 13])
    with torch.no_grad():
        full = model(x, *seeded_masks(keys, model.num_tokens, 0.5)[:2])
        one = model(x[2:3], *seeded_masks(keys[2:3], model.num_tokens, 0.5)[:2])
    for u, v in zip(full, one):
        torch.testing.assert_close(u[2:3], v, atol=1e-5, rtol=1e-5)


def test_forward_chains_stages_and_shares_first_block():
    model = micro(cls_head=True).eval()
    calls = []
    model.decoder_blocks[0].register_forward_hook(lambda *a: calls.append(1))
    x = inputs(model.cfg, 2)
    ids_keep, ids_restore, _ = seeded_masks([0, 1], model.num_tokens, 0.5)
    with torch.no_grad():
        out = model(x, ids_keep, ids_restore)
        assert len(calls) == 1  # teacher and student share one pass of the first block
        latent = model.forward_encoder(x, ids_keep)
        teacher, hidden = model.forward_decoder(latent, ids_restore)
        assert latent.shape == (2, 1 + ids_keep.shape[1], 32)
        assert hidden.shape == (2, model.num_tokens, 16)
        assert torch.equal(out.teacher, teacher)
        assert torch.equal(out.student, model.forward_student(hidden))
        assert torch.equal(out.cls_logit, model.forward_cls(latent))


def test_init_deterministic_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b = micro(cls_head=True), micro(cls_head=True)
    assert torch.equal(state, torch.get_rng_state())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = SDMAE(MICRO, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.decoder_pred.weight, c.decoder_pred.weight)
    assert "pos_embed" not in a.state_dict()  # recomputed from the config, never stored


# ----------------------------------------------------------------------------- masking

def check_masks(ids_keep, ids_restore, mask, L, n_keep):
    N = mask.shape[0]
    assert ids_keep.shape == (N, n_keep) and ids_restore.shape == mask.shape == (N, L)
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    assert torch.equal(ids_shuffle[:, :n_keep], ids_keep)
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore), torch.arange(L).expand(N, L))
    assert (mask.sum(1) == L - n_keep).all()
    assert (torch.gather(mask, 1, ids_keep) == 0).all()


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 4), L=st.integers(1, 60), ratio=st.floats(0.0, 0.95), seed=st.integers(0, 2**31))
def test_random_masking(N, L, ratio, seed):
    g = torch.Generator().manual_seed(seed)
    out = random_masking(N, L, ratio, g)
    check_masks(*out, L, num_visible(L, ratio))
    again = random_masking(N, L, ratio, torch.Generator().manual_seed(seed))
    assert all(torch.equal(u, v) for u, v in zip(out, again))


def test_random_masking_needs_generator():
    with pytest.raises(ValueError, match="Generator"):
        random_masking(2, 10, 0.5, None)


def test_seeded_masks_deterministic_and_batch_independent():
    L = 96
    big = seeded_masks(torch.tensor([5, 7, 9, -2]), L, 0.5, seed=3)
    check_masks(*big, L, 48)
    assert all(torch.equal(u, v) for u, v in zip(big, seeded_masks([5, 7, 9, -2], L, 0.5, seed=3)))
    one = seeded_masks([9], L, 0.5, seed=3)
    assert all(torch.equal(u[2:3], v) for u, v in zip(big, one))
    assert not torch.equal(big[2][0], big[2][1])  # different keys, different masks
    assert not torch.equal(seeded_masks([9], L, 0.5, seed=4)[2], one[2])
    assert not torch.equal(seeded_masks([9], L, 0.5, seed=3, index=1)[2], one[2])
    assert seeded_masks([], L, 0.5)[0].shape == (0, 48)


@pytest.mark.parametrize("L, ratio, K", [(24, 0.5, 2), (25, 0.5, 2), (96, 0.75, 2), (10, 0.5, 3)])
def test_complementary_masks_cover_every_token(L, ratio, K):
    masks = complementary_masks([1, 2, 3], L, ratio, K, seed=5)
    assert len(masks) == K
    for m in masks:
        check_masks(*m, L, num_visible(L, ratio))
    assert (sum(m[2] for m in masks) >= 1).all()
    again = complementary_masks([3], L, ratio, K, seed=5)
    assert all(torch.equal(a[2][2:3], b[2]) for a, b in zip(masks, again))


def test_complementary_masks_too_few():
    with pytest.raises(ValueError, match="cover"):
        complementary_masks([0], 24, 0.25, 2)


# ----------------------------------------------------------------------------- loss & layout

def test_weighted_loss_by_hand():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    w = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    expect = 0.0
    for n in range(2):
        expect += sum(w[n, i].item() * sum((pred[n, i, j] - target[n, i, j]).item() ** 2
                                           for j in range(4)) / 4 for i in range(3))
    torch.testing.assert_close(weighted_loss(pred, target, w), torch.tensor(expect / 2))


def test_patchify_layout():
    imgs = torch.arange(2 * 4 * 8 * 12, dtype=torch.float32).reshape(2, 4, 8, 12)
    p, gw = 4, 3
    x = patchify(imgs, p)
    assert x.shape == (2, 6, p * p * 4)
    for n, i, j, r, c, ch in [(0, 0, 0, 0, 0, 0), (1, 1, 2, 3, 1, 2), (0, 0, 1, 2, 3, 3)]:
        assert x[n, i * gw + j, (r * p + c) * 4 + ch] == imgs[n, ch, i * p + r, j * p + c]
    assert torch.equal(unpatchify(x, p, (2, 3)), imgs)


# ----------------------------------------------------------------------------- training

def test_overfits_few_inputs():
    """Memorise 4 random inputs -> smooth zero-mean targets (fitting the mean alone
    cannot pass; reached in ~65 steps)."""
    model = micro().train()
    x = inputs(model.cfg, 4)
    coarse = torch.rand(4, 4, 2, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    target = patchify(F.interpolate(coarse, size=(16, 24), mode="bilinear"), 4)  # (4, 24, 64)
    w = torch.softmax(torch.randn(4, model.num_tokens, generator=torch.Generator().manual_seed(2)), 1)
    ids_keep, ids_restore, _ = seeded_masks(range(4), model.num_tokens, 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss = weighted_loss(model(x, ids_keep, ids_restore, student=False).teacher, target, w)
        first = loss.item() if first is None else first
        if loss.item() < first / 10:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, (first, loss.item())


def test_freeze_teacher_keeps_teacher_bit_identical():
    model = micro(cls_head=True).train()
    x = inputs(model.cfg, 4)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):  # move BatchNorm stats away from their init first
        loss = model(x, generator=g).teacher.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.freeze_teacher()
    model.train()  # must not wake the teacher up
    teacher = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("student.")}
    student = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("student.")}
    assert any("running_mean" in k for k in teacher) and any("running_mean" in k for k in student)
    assert all(not m.training for n, m in model.named_modules() if n and not n.startswith("student"))
    assert all(m.training for m in model.student.modules())
    ids_student = {id(p) for p in model.student_parameters()}
    ids_teacher = {id(p) for p in model.teacher_parameters()}
    assert not ids_student & ids_teacher
    assert ids_student | ids_teacher == {id(p) for p in model.parameters()}
    assert all(not p.requires_grad for p in model.teacher_parameters())

    opt = torch.optim.AdamW(model.student_parameters(), lr=1e-2)
    w = torch.full((4, model.num_tokens), 1.0 / model.num_tokens)
    for _ in range(3):
        out = model(x, generator=g)
        loss = weighted_loss(out.student, out.teacher.detach(), w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k, v in model.state_dict().items():
        if k in teacher:
            assert torch.equal(v, teacher[k]), k
    changed = [k for k, v in model.state_dict().items() if k in student and not torch.equal(v, student[k])]
    assert any(k.endswith("pred.weight") for k in changed) and any("running_mean" in k for k in changed)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    model = micro(cls_head=True).eval()
    x = inputs(model.cfg, 2)
    masks = seeded_masks([0, 1], model.num_tokens, 0.5)
    masks_gpu = seeded_masks([0, 1], model.num_tokens, 0.5, device="cuda")
    assert all(torch.equal(u, v.cpu()) for u, v in zip(masks, masks_gpu))
    with torch.no_grad():
        cpu = model(x, *masks[:2])
        gpu = model.cuda()(x.cuda(), *masks_gpu[:2])
    for u, v in zip(cpu, gpu):
        if u is not None:
            torch.testing.assert_close(u, v.cpu(), atol=1e-4, rtol=1e-4)
    g = torch.Generator(device="cuda").manual_seed(0)
    assert model(x.cuda(), generator=g).mask.device.type == "cuda"
