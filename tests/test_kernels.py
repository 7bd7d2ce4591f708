"""Every fused kernel pinned to its NumPy twin (C++ always, CUDA with a GPU)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sdmae
from sdmae import kernels, reference
from sdmae.score import ScoreSpec

# float32 tolerance, defined once: relative, plus absolute scaled by the magnitude.
RTOL, ATOL = 2e-5, 2e-6

HAS_GPU = "cuda" in kernels.available_backends()
BACKENDS = ["cpp", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_GPU, reason="no CUDA device here"))]
LAYOUTS = ["c", "fortran", "strided"]


def assert_close(actual, expected):
    actual = actual.cpu().numpy() if isinstance(actual, torch.Tensor) else actual
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL * scale)


def layout(a, kind):
    """The same values as ``a`` in C order, Fortran order or as a strided view."""
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "strided":
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    return np.ascontiguousarray(a)


def on(backend, a):
    """Hand ``a`` to a backend: NumPy for C++, a CUDA tensor for CUDA."""
    return torch.from_numpy(np.ascontiguousarray(a)).cuda() if backend == "cuda" else a


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_version_is_passed_into_cpp():
    assert sdmae._C.__version__ == sdmae.__version__


@pytest.mark.skipif(kernels._C_cuda is None or HAS_GPU, reason="needs the CUDA module built and no GPU present")
def test_cuda_module_without_gpu_raises_clearly():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        kernels._C_cuda.patchify(0, 0, 1, 1, 1, 1, 1, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("shape,p", [((1, 1, 4, 4), 4), ((3, 5, 12, 20), 4), ((2, 9, 16, 48), 16),
                                     ((1, 4, 8, 24), 8), ((2, 3, 3, 5), 1),
                                     # c == 4: four pixels at a time when p % 4 == 0, else the general loop
                                     ((3, 4, 32, 48), 16), ((2, 4, 12, 8), 4), ((2, 4, 6, 4), 2)])
def test_patchify_matches_twin(rng, backend, kind, shape, p):
    x = rng.standard_normal(shape, dtype=np.float32)
    tokens = kernels.patchify(on(backend, layout(x, kind)), p, backend=backend)
    assert_close(tokens, reference.patchify(x, p))


def test_patchify_order_is_mae_convention():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)  # (N, C, H, W)
    t = kernels.patchify(x, 2)
    # token 1 = rows 0-1, columns 2-3; inside: (row, column, channel)
    assert t[0, 1].tolist() == [2, 18, 3, 19, 6, 22, 7, 23]
    np.testing.assert_array_equal(reference.unpatchify(t, 2, 4, 4), x)  # the score twin's map layout


def token_ids(rng, n, l, k):
    """(N, K) int64 ids: a random pick per sample, repeats only when K > L."""
    return np.stack([rng.choice(l, k, replace=k > l) for _ in range(n)]).astype(np.int64)


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("shape,p,k", [
    ((1, 1, 4, 4), 4, 1),        # one token, C = 1
    ((3, 5, 12, 20), 4, 7),      # non-square grid
    ((2, 9, 16, 48), 16, 3),     # K = L
    ((1, 4, 8, 24), 8, 9),       # K > L: repeated ids
    ((2, 3, 3, 5), 1, 15),       # p = 1, K = L
    ((4, 1, 32, 16), 8, 5),      # C = 1, tall
])
def test_gather_patches_matches_twin(rng, kind, shape, p, k):
    x = rng.standard_normal(shape, dtype=np.float32)
    ids = token_ids(rng, shape[0], (shape[2] // p) * (shape[3] // p), k)
    got = kernels.gather_patches(layout(x, kind), layout(ids, kind), p, backend="cpp")
    expected = reference.gather_patches(x, ids, p)
    assert expected.shape == (shape[0], k, shape[1] * p * p)
    assert_close(got, expected)


def test_gather_patches_order_is_conv_weight_order():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)  # (N, C, H, W)
    # token 1 = rows 0-1, columns 2-3; inside: (channel, row, column), unlike patchify
    assert kernels.gather_patches(x, np.array([[1]]), 2)[0, 0].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]
    n, c, p, l = 1, 2, 2, 4
    every = kernels.gather_patches(x, np.arange(l)[None], p)
    by_patchify = reference.patchify(x, p).reshape(n, l, p, p, c).transpose(0, 1, 4, 2, 3).reshape(n, l, -1)
    np.testing.assert_array_equal(every, by_patchify)


def test_gather_patches_is_conv_patch_embedding(rng):
    n, c, h, w, p, d, k = 3, 9, 32, 48, 8, 16, 10
    x = torch.from_numpy(rng.standard_normal((n, c, h, w), dtype=np.float32))
    ids = torch.from_numpy(token_ids(rng, n, (h // p) * (w // p), k))
    conv = torch.nn.Conv2d(c, d, kernel_size=p, stride=p)
    with torch.no_grad():
        tokens = conv(x).flatten(2).transpose(1, 2)  # (N, L, D)
        expected = tokens.gather(1, ids[..., None].expand(-1, -1, d))
        got = kernels.gather_patches(x, ids, p) @ conv.weight.reshape(d, -1).T + conv.bias
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_gather_patches_torch_tensors_in_and_out(rng):
    x = torch.from_numpy(rng.standard_normal((2, 3, 8, 16), dtype=np.float32))
    ids = torch.tensor([[0, 7, 7], [3, 1, 5]])
    got = kernels.gather_patches(x, ids, 4)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == (2, 3, 48)
    assert torch.equal(got, torch.from_numpy(reference.gather_patches(x.numpy(), ids.numpy(), 4)))
    strided = kernels.gather_patches(x[:, :, :, ::2], ids[:, :2] // 2, 4)  # non-contiguous (N, C, 8, 8)
    assert_close(strided, reference.gather_patches(np.ascontiguousarray(x[:, :, :, ::2].numpy()),
                                                   ids[:, :2].numpy() // 2, 4))
    assert_close(kernels.gather_patches(x, ids, 4, backend="numpy"), got.numpy())


def test_gather_patches_binding_refuses_bad_ids():
    x, out = np.zeros((1, 1, 4, 4), np.float32), np.empty((1, 1, 4), np.float32)
    for bad in (-1, 4):
        with pytest.raises(ValueError, match=r"ids must lie in \[0, L\)"):
            kernels._C.gather_patches(x, np.array([[bad]], np.int64), 2, out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("shape,p", [((1, 3, 16, 16), 4), ((4, 3, 24, 40), 8), ((2, 1, 32, 16), 16),
                                     ((3, 2, 5, 7), 1)])
def test_token_weights_match_twin(rng, backend, kind, shape, p):
    g = rng.random(shape, dtype=np.float32) * 255
    g[0] = 0  # a sample without motion gets uniform weights
    w = kernels.token_weights(on(backend, layout(g, kind)), p, backend=backend)
    expected = reference.token_weights(g, p)
    assert_close(w, expected)
    np.testing.assert_allclose(expected.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(expected[0], 1 / expected.shape[1])


def make_frames(rng, t, h0, w0):
    return rng.integers(0, 256, (t, h0, w0, 3), dtype=np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("t,h0,w0,size,p,offset,step,centres", [
    (10, 37, 53, (24, 40), 8, 3, 1, [0, 3, 9, 5, 5]),      # odd frame size, edges clamped, repeats
    (1, 9, 17, (16, 32), 16, 3, 1, [0]),                   # one frame, upsampling
    (8, 60, 44, (12, 8), 4, 2, 2, [7, 1]),                 # other offsets
    (6, 31, 47, (8, 8), 1, 0, 0, [2]),                     # patch 1, zero offsets
])
def test_prepare_matches_twin(rng, backend, kind, t, h0, w0, size, p, offset, step, centres):
    frames = make_frames(rng, t, h0, w0)
    got = kernels.prepare(on(backend, layout(frames, kind)), centres, size, p, offset, step, backend=backend)
    expected = reference.prepare(frames, np.array(centres), size, p, offset, step)
    for a, b in zip(got, expected):  # bit for bit: bf16 models would otherwise round them apart
        np.testing.assert_array_equal(a.cpu().numpy() if isinstance(a, torch.Tensor) else a, b)


def test_prepare_semantics(rng):
    frames = make_frames(rng, 9, 20, 30)
    out = kernels.prepare(frames, [4], (20, 30), 10, offset=3, step=1)
    # at the native size the resize is the identity
    np.testing.assert_allclose(out.inputs[0, 3:6], frames[4].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(out.inputs[0, 0:3], frames[1].transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(out.gradients[0], np.abs(frames[3].astype(np.float32) - frames[5]).transpose(2, 0, 1))
    assert out.inputs.min() >= -1 and out.inputs.max() <= 1


def test_resize_follows_align_corners_false(rng):
    frame = make_frames(rng, 1, 37, 53)[0]
    for size in [(24, 40), (64, 96)]:
        ours = reference.resize_bilinear(frame, size)
        theirs = torch.nn.functional.interpolate(torch.from_numpy(frame.transpose(2, 0, 1)[None].astype(np.float32)),
                                                 size=size, mode="bilinear", align_corners=False)[0].numpy()
        np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_prepare_writes_into_out(rng):
    frames = make_frames(rng, 5, 16, 16)
    out = reference.Prepared(np.empty((2, 9, 8, 8), np.float32), np.empty((2, 3, 8, 8), np.float32),
                             np.empty((2, 4), np.float32))
    result = kernels.prepare(frames, [1, 3], (8, 8), 4, out=out)
    assert result.inputs is out.inputs
    assert_close(out.weights, reference.prepare(frames, np.array([1, 3]), (8, 8), 4).weights)


SCORE_OPTIONS = [  # (tokens, token_weighting, frame_reduce, map_channel_weight, map_normal)
    ("all", "motion", "mean", 1.0, 0.0), ("visible", "uniform", "mean", 3.0, -1.0),
    ("hidden", "motion", "max", 0.5, -1.0), ("visible", "uniform", "max", 1.0, 0.0),
    ("all", "uniform", "top", 3.0, -1.0), ("visible", "motion", "top", 1.0, 0.0)]


def spec_of(options, p, size, **more):
    tokens, weighting, reduce, cw, normal = options
    return ScoreSpec(p, size, map_normal=normal, tokens=tokens, token_weighting=weighting, frame_reduce=reduce,
                     map_channel_weight=cw, **more)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("options", SCORE_OPTIONS)
@pytest.mark.parametrize("k,n,size,p,c,with_maps,has_student", [
    (1, 1, (8, 8), 4, 4, True, True), (2, 3, (16, 24), 8, 4, True, True), (2, 2, (16, 32), 16, 1, True, True),
    (3, 2, (12, 12), 2, 4, False, True), (2, 2, (8, 12), 4, 4, True, False),
    # maps: the four-pixels-at-a-time path needs c == 4 and p % 4 == 0; these take the general one
    (2, 2, (12, 12), 2, 4, True, True), (1, 2, (12, 16), 4, 3, True, True), (2, 1, (6, 9), 3, 4, True, True)])
def test_score_matches_twin(rng, backend, kind, options, k, n, size, p, c, with_maps, has_student):
    l, d = (size[0] // p) * (size[1] // p), p * p * c
    target = rng.standard_normal((n, l, d), dtype=np.float32)
    teacher, student = (rng.standard_normal((k, n, l, d), dtype=np.float32) for _ in range(2))
    hidden = (rng.random((k, n, l)) < 0.5).astype(np.float32)
    hidden[:, 0, 0] = 1.0 if options[0] == "visible" else 0.0  # a token no selected pass judges (unless "all")
    weights = reference.token_weights(rng.random((n, 3) + size, dtype=np.float32), p)
    weights[0] = 0  # degenerate weights: the map falls back to relative weight 1
    spec = spec_of(options, p, size, discrepancy_weight=0.7, top_fraction=0.1, map_weight=1.3)
    arrays = [target, teacher, student if has_student else None, weights, hidden]
    target_, teacher_, student_, weights_, hidden_ = (None if a is None else on(backend, layout(a, kind))
                                                      for a in arrays)
    # the fused half, per pass
    got = kernels.score_passes(target_, teacher_, student_, weights_, spec, hidden=hidden_, with_maps=with_maps,
                               backend=backend)
    expected = reference.score_passes(target, teacher, student if has_student else teacher, hidden, weights, spec,
                                      with_maps)
    # and the whole score
    got_all = kernels.score(target_, teacher_, student_, weights_, spec, hidden=hidden_, with_maps=with_maps,
                            backend=backend)
    expected_all = reference.score(target, teacher, student if has_student else teacher, hidden, weights, spec,
                                   with_maps=with_maps)
    for a, b in zip(list(got) + list(got_all), list(expected) + list(expected_all)):
        if b is None:
            assert a is None
        else:
            assert_close(a, b)


def test_score_formula_by_hand():
    target = np.zeros((1, 1, 4), np.float32)
    teacher = np.array([[[1, 2, 0, 0.5]]], np.float32)  # p=1, C=4: one pixel, the map channel predicts 0.5
    student = np.array([[[1, 0, 0, 0.5]]], np.float32)
    spec = ScoreSpec(1, (1, 1), token_weighting="motion", frame_reduce="mean", map_channel_weight=1.0,
                     discrepancy_weight=2.0)
    s = kernels.score(target, teacher, student, np.ones((1, 1), np.float32), spec)
    assert s.token_error[0, 0] == pytest.approx((1 + 4 + 0 + 0.25) / 4)
    assert s.token_discrepancy[0, 0] == pytest.approx(4 / 4)
    assert s.frame[0] == pytest.approx(5.25 / 4 + 2.0)
    assert s.maps[0, 0, 0] == pytest.approx(0.5 + 2.0 * 1.0)
    # the map channel weighs 3: (1 + 4 + 0 + 3 * 0.25) / 6; a signed map reads 0.5 as probability 0.75
    spec = ScoreSpec(1, (1, 1), discrepancy_weight=0.0, map_channel_weight=3.0, map_normal=-1.0)
    s = kernels.score(target, teacher, student, np.ones((1, 1), np.float32), spec)
    assert s.token_error[0, 0] == pytest.approx(5.75 / 6)
    assert s.maps[0, 0, 0] == pytest.approx(0.75)


@pytest.mark.parametrize("backend", BACKENDS)
def test_score_classification_term_matches_twin(rng, backend):
    k, n, l, p = 2, 3, 6, 2
    target = rng.standard_normal((n, l, p * p * 4), dtype=np.float32)
    teacher, student = (rng.standard_normal((k, n, l, p * p * 4), dtype=np.float32) for _ in range(2))
    weights = reference.token_weights(rng.random((n, 3, 4, 6), dtype=np.float32), p)
    head = rng.random((k, n), dtype=np.float32)
    args = [on(backend, a) for a in (target, teacher, student, weights, head)]
    plain = kernels.score(*args[:4], ScoreSpec(p, (4, 6)), with_maps=False, backend=backend)
    spec = ScoreSpec(p, (4, 6), cls_weight=0.5)
    got = kernels.score(*args[:4], spec, classification=args[4], with_maps=False, backend=backend)
    expected = reference.score(target, teacher, student, np.zeros((k, n, l), np.float32), weights, spec,
                               classification=head, with_maps=False)
    assert_close(got.frame, expected.frame)
    # by hand: the frame score plus half the head's probability averaged over the passes
    assert_close(got.frame, _host(plain.frame) + 0.5 * head.mean(axis=0))
    with pytest.raises(ValueError, match="classification must have shape"):
        kernels.score(*args[:4], spec, classification=args[4][:1], backend=backend)


def _host(a):
    return a.cpu().numpy() if isinstance(a, torch.Tensor) else a


def test_score_passes_judge_their_visible_tokens():
    # two passes over 2 tokens: token 0 hidden in pass 0, token 1 hidden in pass 1
    target = np.zeros((1, 2, 4), np.float32)
    teacher = np.stack([np.full((1, 2, 4), 1.0, np.float32), np.full((1, 2, 4), 3.0, np.float32)])  # (2, 1, 2, 4)
    hidden = np.array([[[1, 0]], [[0, 1]]], np.float32)
    w = np.full((1, 2), 0.5, np.float32)

    def score(**spec):
        return kernels.score(target, teacher, teacher, w, ScoreSpec(1, (1, 2), map_channel_weight=1.0, **spec),
                             hidden=hidden)

    visible = score(tokens="visible", frame_reduce="mean")
    np.testing.assert_allclose(visible.token_error, [[9.0, 1.0]])  # token 0 from pass 1, token 1 from pass 0
    every = score(tokens="all", frame_reduce="mean")
    np.testing.assert_allclose(every.token_error, [[5.0, 5.0]])
    assert score(tokens="visible", frame_reduce="max").frame[0] == pytest.approx(9.0)
    both = score(tokens="visible", frame_reduce="top", top_fraction=1.0)
    assert both.frame[0] == pytest.approx(5.0)  # the mean of the two largest of two


def test_kernel_spec_carries_every_field_under_its_name():
    spec = ScoreSpec(4, (8, 12), map_normal=-1.0, tokens="hidden", map_channel_weight=2.5, discrepancy_weight=0.5,
                     map_weight=1.5)
    for module in [kernels._C] + ([kernels._C_cuda] if kernels._C_cuda is not None else []):
        made = kernels._kernel_spec(module, spec)
        for name in ("patch", "size", "map_normal", "tokens", "map_channel_weight", "discrepancy_weight",
                     "map_weight"):
            assert getattr(made, name) == getattr(spec, name), (module.__name__, name)
        with pytest.raises(ValueError, match="tokens must be"):
            module.ScoreSpec(patch=4, size=(8, 12), map_normal=0.0, tokens="some", map_channel_weight=1.0,
                             discrepancy_weight=1.0, map_weight=1.0)


@pytest.mark.skipif(kernels._C_cuda is None, reason="needs the CUDA module built")
def test_cuda_score_binding_checks_its_tensors():
    tok, w = torch.zeros((1, 6, 64)), torch.zeros((1, 6))
    spec = kernels._kernel_spec(kernels._C_cuda, ScoreSpec(4, (8, 12)))
    with pytest.raises(ValueError, match="target must be on a CUDA device"):
        kernels._C_cuda.score_passes(tok, tok[None], tok[None], w[None], w, spec, w[None], w[None], None, 0)
    with pytest.raises(ValueError, match="target must be"):
        kernels._C_cuda.score_passes(w, tok[None], tok[None], w[None], w, spec, w[None], w[None], None, 0)


def test_torch_cpu_tensors_in_and_out(rng):
    x = torch.from_numpy(rng.standard_normal((2, 3, 8, 8), dtype=np.float32))
    t = kernels.patchify(x, 4)
    assert isinstance(t, torch.Tensor)
    assert torch.equal(t, torch.from_numpy(reference.patchify(x.numpy(), 4)))
    w = kernels.token_weights(x.abs()[:, :, :, ::1].transpose(2, 3), 4)  # a non-contiguous tensor
    assert_close(w, reference.token_weights(np.ascontiguousarray(x.abs().transpose(2, 3).numpy()), 4))


def test_numpy_backend_and_fallback(monkeypatch, rng):
    x = rng.standard_normal((1, 2, 4, 4), dtype=np.float32)
    assert_close(kernels.patchify(x, 2, backend="numpy"), reference.patchify(x, 2))
    monkeypatch.setenv("SDMAE_BACKEND", "numpy")
    assert_close(kernels.token_weights(np.abs(x), 2), reference.token_weights(np.abs(x), 2))
    monkeypatch.delenv("SDMAE_BACKEND")
    monkeypatch.setattr(kernels, "_C", None)
    monkeypatch.setattr(kernels, "_warned_fallback", False)
    with pytest.warns(RuntimeWarning, match="NumPy twins"):
        assert_close(kernels.patchify(x, 2), reference.patchify(x, 2))
    with pytest.raises(RuntimeError, match="not built"):
        kernels.patchify(x, 2, backend="cpp")


F32 = np.zeros((2, 3, 8, 8), np.float32)
FRAMES = np.zeros((5, 10, 12, 3), np.uint8)
TOK = np.zeros((2, 4, 64), np.float32)
W = np.full((2, 4), 0.25, np.float32)
SPEC = ScoreSpec(4, (8, 8))
IDS = np.zeros((2, 2), np.int64)


@pytest.mark.parametrize("call,error,words", [
    (lambda: kernels.patchify(F32[0], 4), ValueError, "x must have shape (N, C, H, W)"),
    (lambda: kernels.patchify(F32.astype(np.float64), 4), TypeError, "dtype float32"),
    (lambda: kernels.patchify(F32, 3), ValueError, "multiple of the patch"),
    (lambda: kernels.patchify(F32[:0], 4), ValueError, "N, C >= 1"),
    (lambda: kernels.patchify(F32.tolist(), 4), TypeError, "NumPy array or torch tensor"),
    (lambda: kernels.patchify(F32, 0), ValueError, "p must be positive"),
    (lambda: kernels.patchify(F32, 4, backend="gpu"), ValueError, "backend must be one of"),
    (lambda: kernels.patchify(F32, 4, backend="cuda"), ValueError, "needs CUDA torch tensors"),
    (lambda: kernels.gather_patches(F32, IDS.astype(np.int32), 4), TypeError, "ids must have dtype int64"),
    (lambda: kernels.gather_patches(F32.astype(np.float64), IDS, 4), TypeError, "x must have dtype float32"),
    (lambda: kernels.gather_patches(F32[0], IDS, 4), ValueError, "x must have shape (N, C, H, W)"),
    (lambda: kernels.gather_patches(F32, IDS[0], 4), ValueError, "ids must have shape (N, K)"),
    (lambda: kernels.gather_patches(F32, IDS[:1], 4), ValueError, "ids must have shape (N, K) = (2, K)"),
    (lambda: kernels.gather_patches(F32, IDS[:, :0], 4), ValueError, "K >= 1"),
    (lambda: kernels.gather_patches(F32, IDS + [[0, 4], [0, 0]], 4), ValueError, "ids[0, 1] = 4 is outside"
     " the token grid [0, 4)"),
    (lambda: kernels.gather_patches(F32, IDS - [[0, 0], [1, 0]], 4), ValueError, "ids[1, 0] = -1 is outside"),
    (lambda: kernels.gather_patches(F32[:, :, :6], IDS, 4), ValueError, "multiple of the patch"),
    (lambda: kernels.gather_patches(F32, IDS.tolist(), 4), TypeError, "ids must be a NumPy array or torch tensor"),
    (lambda: kernels.gather_patches(F32, IDS, 4, backend="cuda"), ValueError, "gather_patches has no CUDA backend"),
    (lambda: kernels.token_weights(F32.reshape(6, 8, 8), 4), ValueError, "g must have shape"),
    (lambda: kernels.prepare(FRAMES[..., :2], [0], (8, 8), 4), ValueError, "(T, H0, W0, 3)"),
    (lambda: kernels.prepare(FRAMES.astype(np.float32), [0], (8, 8), 4), TypeError, "frames must have dtype uint8"),
    (lambda: kernels.prepare(FRAMES, [0, -1], (8, 8), 4), ValueError, "centres[1] = -1"),
    (lambda: kernels.prepare(FRAMES, [5], (8, 8), 4), ValueError, "outside the video's frames [0, 5)"),
    (lambda: kernels.prepare(FRAMES, [], (8, 8), 4), ValueError, "centres is empty"),
    (lambda: kernels.prepare(FRAMES, [0.5], (8, 8), 4), TypeError, "centres must hold integers"),
    (lambda: kernels.prepare(FRAMES, [0], (8, 10), 4), ValueError, "multiple of the patch"),
    (lambda: kernels.prepare(FRAMES, [0], (8, 8), 4, offset=-1), ValueError, "offset must be >= 0"),
    (lambda: kernels.prepare(FRAMES, [0], 8, 4), ValueError, "size must be a pair"),
    (lambda: kernels.score(TOK, TOK, TOK, W, ScoreSpec(4, (8, 12))), ValueError, "target must have shape (N, 6,"),
    (lambda: kernels.score(TOK, TOK[:1], TOK, W, SPEC), ValueError, "teacher must have shape (K, *target.shape)"),
    (lambda: kernels.score(TOK, TOK, TOK, W, (4, (8, 8))), TypeError, "spec must be a sdmae.score.ScoreSpec"),
    (lambda: ScoreSpec(4, (8, 8), tokens="some"), ValueError, "tokens must be one of"),
    (lambda: ScoreSpec(4, (8, 8), frame_reduce="median"), ValueError, "frame_reduce must"),
    (lambda: ScoreSpec(4, (8, 10)), ValueError, "size must be two positive multiples of patch 4"),
    (lambda: ScoreSpec(4, (8, 8), map_normal=1.0), ValueError, "map_normal must be < 1"),
    (lambda: kernels.score(TOK, TOK, TOK, W, SPEC, hidden=W), ValueError, "hidden must have shape"),
    (lambda: kernels.score(TOK, TOK, TOK, W[:, :3], SPEC), ValueError, "weights must have shape (N, L)"),
    (lambda: kernels.score(TOK, TOK, TOK.astype(np.float16), W, SPEC), TypeError, "student must have dtype"),
    (lambda: kernels.score(TOK[:0], TOK[:0], TOK[:0], W[:0], SPEC), ValueError, "empty batch"),
])
def test_bad_input_is_named(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA tensor")
def test_cuda_tensor_to_cpu_backend_is_refused():
    with pytest.raises(ValueError, match="runs on the CPU but got CUDA tensors"):
        kernels.patchify(torch.zeros((1, 1, 4, 4), device="cuda"), 2, backend="cpp")
    ids = torch.zeros((1, 1), dtype=torch.int64, device="cuda")
    with pytest.raises(ValueError, match="gather_patches has no CUDA backend"):  # a CPU-only op
        kernels.gather_patches(torch.zeros((1, 1, 4, 4), device="cuda"), ids, 2)


DTYPES = [np.float32, np.float64, np.uint8, np.int64, np.float16]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(["patchify", "gather_patches", "token_weights", "prepare", "score"]),
       dims=st.lists(st.integers(0, 9), min_size=1, max_size=5), p=st.integers(-1, 5),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_random_shapes_and_dtypes_never_crash(op, dims, p, dtype, seed):
    rng = np.random.default_rng(seed)
    a = (rng.random(dims) * 255).astype(dtype)
    try:
        if op == "patchify":
            got, expected = kernels.patchify(a, p), lambda: reference.patchify(a, p)
        elif op == "gather_patches":
            l = (a.shape[2] // p) * (a.shape[3] // p) if a.ndim == 4 and p > 0 else 1
            ids = rng.integers(-1, l + 1, (a.shape[0] if a.ndim else 1, 3))  # in range or just outside
            got, expected = kernels.gather_patches(a, ids, p), lambda: reference.gather_patches(a, ids, p)
        elif op == "token_weights":
            got, expected = kernels.token_weights(a, p), lambda: reference.token_weights(a, p)
        elif op == "prepare":
            centres = rng.integers(0, max(dims[0], 1), 2)
            size = (2 * p, 3 * p) if p > 0 else (0, 0)
            got = kernels.prepare(a, centres, size, p)
            expected = lambda: reference.prepare(a, centres, size, p)  # noqa: E731
        else:
            spec = ScoreSpec(p, (p, 2 * p) if p > 0 else (0, 0))
            wts = np.full(a.shape[:2], 0.5, np.float32) if a.ndim >= 2 else a
            got = kernels.score(a, a * 0.5 if a.ndim else a, a, wts, spec)
            hid = np.zeros((1,) + a.shape[:2], np.float32)
            expected = lambda: reference.score(a, (a * 0.5)[None], a[None], hid, wts, spec)  # noqa: E731
    except (ValueError, TypeError):
        return
    want = expected()
    for g, e in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
        if e is not None:
            assert_close(g, e)


# ---------------------------------------------------------------------------
# where a CUDA model's kernels run: the GPU when a probe launch works, else the CPU


@pytest.fixture
def fresh_cuda_state(monkeypatch):
    """An empty probe cache and warning memory (monkeypatch restores the real ones)."""
    monkeypatch.setattr(kernels, "_cuda_problems", {})
    monkeypatch.setattr(kernels, "_warned_cuda_fallback", set())


class FakeCudaModule:
    """A _C_cuda with one GPU whose probe launch gives ``problem`` ("" = it ran)."""

    def __init__(self, problem):
        self.problem, self.probes = problem, []

    def device_count(self):
        return 1

    def probe(self, device):
        self.probes.append(device)
        return self.problem


def test_cuda_model_without_the_cuda_module_runs_its_kernels_on_the_cpu(monkeypatch, fresh_cuda_state):
    import warnings

    monkeypatch.setattr(kernels, "_C_cuda", None)
    assert "cuda" not in kernels.available_backends()
    with pytest.warns(RuntimeWarning, match=r"sdmae\._C_cuda was not built .*run on the CPU"):
        assert kernels.kernel_device("cuda") == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per reason, not per detector
        assert kernels.kernel_device(torch.device("cuda", 0)) == torch.device("cpu")
        assert kernels.kernel_device("cpu") == torch.device("cpu")


def test_a_failed_probe_launch_keeps_cuda_out(monkeypatch, fresh_cuda_state):
    # what a module built without the GPU's architecture (a T4 with sm_80;90 only) reports
    fake = FakeCudaModule("sdmae._C_cuda: token_weights launch: no kernel image is available for execution "
                          "on the device")
    monkeypatch.setattr(kernels, "_C_cuda", fake)
    assert "cuda" not in kernels.available_backends()
    with pytest.warns(RuntimeWarning, match="no kernel image is available.*run on the CPU"):
        assert kernels.kernel_device("cuda:0") == torch.device("cpu")
    assert fake.probes == [0]  # launched once, then cached
    assert kernels.cuda_problem(1) == "no CUDA device 1 (the runtime sees 1)"
    assert fake.probes == [0]


def test_a_working_probe_keeps_the_kernels_on_the_gpu(monkeypatch, fresh_cuda_state):
    import warnings

    monkeypatch.setattr(kernels, "_C_cuda", FakeCudaModule(""))
    assert kernels.available_backends()[0] == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.kernel_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.skipif(kernels._C_cuda is None or torch.cuda.is_available(),
                    reason="needs the CUDA module built and no GPU present")
def test_probe_without_a_gpu_says_so():
    assert kernels._C_cuda.probe(0) == "no CUDA device is available"
    assert kernels.cuda_problem(0) == "no CUDA device 0 (the runtime sees 0)"


@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU the CUDA kernels run on")
def test_probe_launch_runs_on_the_gpu():
    assert kernels._C_cuda.probe(0) == ""
    assert kernels.kernel_device("cuda") == torch.device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_detector_without_the_cuda_module_scores_the_same(tiny_run, tiny_data, monkeypatch, fresh_cuda_state):
    from sdmae.data import load_dataset, read_video
    from sdmae.detector import Detector

    clip = read_video(load_dataset(tiny_data, "avenue", "test")[0].source)[:30]
    gpu = Detector.load(tiny_run, device="cuda", precision="fp32")
    want = gpu.score_frames(clip, with_maps=True)
    monkeypatch.setattr(kernels, "_C_cuda", None)
    with pytest.warns(RuntimeWarning, match=r"sdmae\._C_cuda was not built"):
        fallback = Detector.load(tiny_run, device="cuda", precision="fp32")
    assert fallback.device.type == "cuda" and fallback.kernel_device.type == "cpu"
    got = fallback.score_frames(clip, with_maps=True)
    # the same model on the same GPU; only prepare/score moved (CPU and CUDA kernels agree to ~1e-6)
    np.testing.assert_allclose(got.raw, want.raw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.maps, want.maps, rtol=1e-4, atol=1e-5)
    centres = np.arange(len(clip))  # uint8 frames already on the GPU come back to the CPU kernels
    raw, maps = fallback.score_batch(torch.as_tensor(clip).cuda(), centres, centres, with_maps=True)
    np.testing.assert_allclose(raw, want.raw, rtol=1e-4, atol=1e-6)
    assert maps.shape == (len(clip),) + fallback.size
    streamed = [s.raw for s in fallback.stream(iter(clip))]  # numpy Prepared batched across pushes
    np.testing.assert_allclose(streamed, want.raw, rtol=5e-3)  # other batches: TF32 rounding on the GPU
