"""Public hot-path ops: validate the arguments, then dispatch.

Every op takes ``backend="auto" | "cpp" | "cuda" | "numpy"``; ``None`` reads the
``SDMAE_BACKEND`` environment variable (default ``auto``). ``auto`` picks CUDA
for CUDA tensors, the C++ extension otherwise, and the NumPy twin of
:mod:`sdmae.reference` when the extension is not built (with one warning).

CPU backends take NumPy arrays or CPU torch tensors (zero-copy) and return the
same kind; the CUDA backend (every op but ``gather_patches``) takes CUDA torch
tensors, runs on the current stream and returns CUDA tensors. The kernels
themselves never see an unchecked buffer: everything is checked here.
"""

from __future__ import annotations

import operator
import os
import sys
import warnings
from typing import Any

import numpy as np

from . import reference
from .reference import CENTRE_FRAME, Passes, Prepared, Scores
from .score import ScoreSpec, frame_scores

try:
    from . import _C
except ImportError as exc:  # the package still works with the twins alone
    _C = None
    _C_IMPORT_ERROR: Exception | None = exc
else:
    _C_IMPORT_ERROR = None

try:
    from . import _C_cuda
except ImportError as exc:
    _C_cuda = None
    _C_CUDA_IMPORT_ERROR: Exception | None = exc
else:
    _C_CUDA_IMPORT_ERROR = None

__all__ = ["BACKENDS", "CENTRE_FRAME", "Passes", "Prepared", "Scores", "available_backends", "cuda_problem",
           "kernel_device", "patchify", "gather_patches", "token_weights", "prepare", "score", "score_passes"]

BACKENDS = ("auto", "cpp", "cuda", "numpy")
_warned_fallback = False


def available_backends() -> list[str]:
    """Backends usable on this machine, fastest first: CUDA only when a kernel launched
    on GPU 0 ran (see :func:`cuda_problem`)."""
    found = []
    if cuda_problem(0) is None:
        found.append("cuda")
    if _C is not None:
        found.append("cpp")
    return found + ["numpy"]


_cuda_problems: dict[int, str | None] = {}  # device index -> cuda_problem's answer
_warned_cuda_fallback: set[str] = set()


def cuda_problem(device: int = 0) -> str | None:
    """Why the CUDA kernels cannot run on GPU ``device``, or None when they can.

    The first call per device launches one tiny kernel there: a module built
    without the GPU's architecture (sm_70 with nvcc 13, a T4's sm_75 outside
    the build's list) imports and counts devices fine, and fails only at its
    first launch.
    """
    if _C_cuda is None:
        return f"sdmae._C_cuda was not built ({_C_CUDA_IMPORT_ERROR})"
    if device not in _cuda_problems:
        if _C_cuda.device_count() <= device:
            return f"no CUDA device {device} (the runtime sees {_C_cuda.device_count()})"  # not cached: cheap
        _cuda_problems[device] = _C_cuda.probe(device) or None
    return _cuda_problems[device]


def kernel_device(device: Any) -> Any:
    """Where the kernels of a model on ``device`` run (a ``torch.device``): that device,
    or the CPU, with one RuntimeWarning per reason, when the CUDA kernels cannot run on
    it; the C++ kernels give the same results (tests/test_kernels.py pins both)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device
    index = device.index
    if index is None and _C_cuda is not None:  # "cuda" means torch's current device
        index = torch.cuda.current_device()
    problem = cuda_problem(index or 0)
    if problem is None:
        return device
    if problem not in _warned_cuda_fallback:
        warnings.warn(f"{problem}; the kernels of this {device} model run on the CPU (copying its "
                      "inputs and outputs), with the same results", RuntimeWarning, stacklevel=2)
        _warned_cuda_fallback.add(problem)
    return torch.device("cpu")


# ---------------------------------------------------------------------------
# argument checking


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor cannot exist unless torch is imported
    return torch is not None and isinstance(x, torch.Tensor)


def _resolve_backend(backend: str | None, on_cuda: bool) -> str:
    chosen = backend if backend is not None else os.environ.get("SDMAE_BACKEND", "auto")
    if chosen not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {chosen!r}")
    if chosen == "auto":
        if on_cuda:
            chosen = "cuda"
        elif _C is not None:
            chosen = "cpp"
        else:
            global _warned_fallback
            if not _warned_fallback:
                warnings.warn(f"sdmae._C is not built ({_C_IMPORT_ERROR}); using the slow NumPy twins",
                              RuntimeWarning, stacklevel=3)
                _warned_fallback = True
            chosen = "numpy"
    if chosen == "cuda":
        if not on_cuda:
            raise ValueError("backend='cuda' needs CUDA torch tensors; move the inputs with .cuda() "
                             "or use backend='cpp'")
        if _C_cuda is None:
            raise RuntimeError("backend='cuda' but sdmae._C_cuda was not built (reinstall with CUDA "
                               "available, or SDMAE_CUDA=1 to make its absence an error)")
    elif on_cuda:
        raise ValueError(f"backend={chosen!r} runs on the CPU but got CUDA tensors; "
                         "use backend='cuda' or move the inputs with .cpu()")
    if chosen == "cpp" and _C is None:
        raise RuntimeError(f"backend='cpp' but the extension sdmae._C is not built: {_C_IMPORT_ERROR}")
    return chosen


def _int_at_least(value: Any, name: str, minimum: int) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if v < minimum:
        raise ValueError(f"{name} must be {'positive' if minimum == 1 else f'>= {minimum}'}, got {v}")
    return v


def _positive_int(value: Any, name: str) -> int:
    return _int_at_least(value, name, 1)


def _non_negative_int(value: Any, name: str) -> int:
    return _int_at_least(value, name, 0)


def _size(size: Any, patch: int) -> tuple[int, int]:
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair (h, w), got {size!r}") from None
    h, w = _positive_int(h, "size[0]"), _positive_int(w, "size[1]")
    if h % patch or w % patch:
        raise ValueError(f"size {(h, w)} must be a multiple of the patch size {patch}")
    return h, w


def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def _check_array(x: Any, name: str, ndim: int, shape_doc: str, dtype: str) -> None:
    """Type, dtype and ndim of one array argument (either kind of array)."""
    if not (isinstance(x, np.ndarray) or _is_tensor(x)):
        raise TypeError(f"{name} must be a NumPy array or torch tensor of shape {shape_doc}, "
                        f"got {type(x).__name__}")
    if _dtype_name(x) != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (shape {shape_doc}), got {_dtype_name(x)}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got {tuple(x.shape)}")


def _check_images(x: Any, name: str, p: Any) -> tuple[int, tuple[int, int, int, int]]:
    """A non-empty (N, C, H, W) float32 batch with H, W multiples of the patch -> (p, shape)."""
    _check_array(x, name, 4, "(N, C, H, W)", "float32")
    p = _positive_int(p, "p")
    n, c, h, w = x.shape
    if n == 0 or c == 0:
        raise ValueError(f"{name} must have shape (N, C, H, W) with N, C >= 1, got {tuple(x.shape)}")
    _size((h, w), p)
    return p, (n, c, h, w)


def _on_cuda(*arrays: Any) -> bool:
    flags = {bool(_is_tensor(a) and a.is_cuda) for a in arrays if a is not None}
    if len(flags) > 1:
        raise ValueError("the arguments mix CUDA tensors and CPU arrays; put them on one device")
    return flags == {True}


def _to_numpy(x: Any) -> np.ndarray:
    """Zero-copy view of a CPU tensor or array, made C-contiguous (a copy only when strided);
    a CUDA tensor is copied to the host."""
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x)


def _like(result: np.ndarray | None, template: Any) -> Any:
    """Return torch tensors (on the template's device) to torch callers, arrays to NumPy callers."""
    if result is None or not _is_tensor(template):
        return result
    import torch

    return torch.from_numpy(result).to(template.device)


def _cuda_prepare_tensors(*tensors: Any) -> tuple[Any, ...]:
    device = tensors[0].device
    for t in tensors:
        if t.device != device:
            raise ValueError(f"all CUDA tensors must be on one device, got {t.device} and {device}")
    return tuple(t.contiguous() for t in tensors)


def _stream(device: Any) -> int:
    import torch

    return torch.cuda.current_stream(device).cuda_stream


# ---------------------------------------------------------------------------
# ops


def patchify(x: Any, p: int, *, backend: str | None = None) -> Any:
    """Cut images into p x p tokens.

    Parameters
    ----------
    x : (N, C, H, W) float32 array or tensor, H and W multiples of p
    p : int, patch size

    Returns
    -------
    (N, L, p*p*C) float32, tokens row-major, each ordered (row, column, channel).
    """
    p, (n, c, h, w) = _check_images(x, "x", p)
    return _per_image_op("patchify", x, p, (n, (h // p) * (w // p), p * p * c), backend)


def gather_patches(x: Any, ids: Any, p: int, *, backend: str | None = None) -> Any:
    """The p x p patches of x at the tokens ``ids``, ready for a linear patch embedding.

    Each patch is flattened (channel, row, column), the order in which
    ``nn.Conv2d(C, D, p, stride=p).weight.reshape(D, -1)`` reads it, so that
    ``gather_patches(x, ids, p) @ weight.reshape(D, -1).T + bias`` equals the
    conv's output tokens at ``ids`` while only those patches are read. This is
    not :func:`patchify`'s (row, column, channel) order.

    CPU only: on a GPU, torch indexing is as fast and keeps the stream free of
    the synchronisation the id check would cost (see ``SDMAE.embed_visible``).

    Parameters
    ----------
    x : (N, C, H, W) float32 array or CPU tensor, H and W multiples of p
    ids : (N, K) int64, K >= 1, token indices in [0, L) into the row-major
        (H/p, W/p) grid; repeats are allowed.
    p : int, patch size

    Returns
    -------
    (N, K, C*p*p) float32
    """
    p, (n, c, h, w) = _check_images(x, "x", p)
    _check_array(ids, "ids", 2, "(N, K)", "int64")
    if ids.shape[0] != n or ids.shape[1] == 0:
        raise ValueError(f"ids must have shape (N, K) = ({n}, K) with K >= 1 for x of batch {n}, "
                         f"got {tuple(ids.shape)}")
    if backend == "cuda" or _on_cuda(x, ids):
        raise ValueError("gather_patches has no CUDA backend: index CUDA tensors with torch "
                         "(as SDMAE.embed_visible does), or pass CPU arrays")
    chosen = _resolve_backend(backend, False)
    _check_token_ids(ids, (h // p) * (w // p))
    k = ids.shape[1]
    xa, ia = _to_numpy(x), _to_numpy(ids)
    if chosen == "numpy":
        return _like(reference.gather_patches(xa, ia, p), x)
    out = np.empty((n, k, c * p * p), np.float32)
    _C.gather_patches(xa, ia, p, out)
    return _like(out, x)


def _check_token_ids(ids: Any, l: int) -> None:
    """Raise naming the first id outside [0, l); the kernels use ids as addresses."""
    bad = (ids < 0) | (ids >= l)  # NumPy or torch alike
    if bad.any():
        i, j = (int(v) for v in (bad.nonzero()[0] if _is_tensor(bad) else np.argwhere(bad)[0]))
        raise ValueError(f"ids[{i}, {j}] = {int(ids[i, j])} is outside the token grid [0, {l}), "
                         f"L = (H/p)*(W/p)")


def token_weights(g: Any, p: int, *, backend: str | None = None) -> Any:
    """Motion weights of the tokens, ``w_i = m_i / sum_j m_j``.

    Parameters
    ----------
    g : (N, C, H, W) float32 motion gradients, H and W multiples of p
    p : int, patch size

    Returns
    -------
    (N, L) float32, rows summing to 1 (uniform where a sample has no motion).
    """
    p, (n, c, h, w) = _check_images(g, "g", p)
    return _per_image_op("token_weights", g, p, (n, (h // p) * (w // p)), backend)


def _per_image_op(name: str, x: Any, p: int, out_shape: tuple[int, ...], backend: str | None) -> Any:
    """Run the op ``name`` of (N, C, H, W) images and patch p on the chosen backend: the
    twin in :mod:`sdmae.reference`, ``_C`` or ``_C_cuda`` (same name, writing ``out``)."""
    n, c, h, w = x.shape
    chosen = _resolve_backend(backend, _on_cuda(x))
    if chosen == "cuda":
        import torch

        (xt,) = _cuda_prepare_tensors(x)
        out = torch.empty(out_shape, dtype=torch.float32, device=xt.device)
        with torch.cuda.device(xt.device):
            getattr(_C_cuda, name)(xt.data_ptr(), out.data_ptr(), n, c, h, w, p, _stream(xt.device))
        return out
    xa = _to_numpy(x)
    if chosen == "numpy":
        return _like(getattr(reference, name)(xa, p), x)
    out = np.empty(out_shape, np.float32)
    getattr(_C, name)(xa, p, out)
    return _like(out, x)


def _centres(centres: Any, num_frames: int) -> np.ndarray:
    if _is_tensor(centres):
        centres = centres.detach().cpu().numpy()
    c = np.asarray(centres)
    if c.ndim == 0:
        c = c.reshape(1)
    if c.ndim != 1:
        raise ValueError(f"centres must have shape (N,), got {c.shape}")
    if c.size == 0:
        raise ValueError("centres is empty: prepare needs at least one centre frame (N >= 1)")
    if c.dtype.kind not in "iu":
        raise TypeError(f"centres must hold integers, got dtype {c.dtype}")
    bad = np.flatnonzero((c < 0) | (c >= num_frames))
    if bad.size:
        raise ValueError(f"centres[{bad[0]}] = {c[bad[0]]} is outside the video's frames [0, {num_frames})")
    return np.ascontiguousarray(c, dtype=np.int64)


def prepare(frames: Any, centres: Any, size: tuple[int, int], patch: int, offset: int = 3, step: int = 1,
            *, out: Prepared | None = None, backend: str | None = None) -> Prepared:
    """The fused front end: model inputs, motion gradients and token weights.

    Parameters
    ----------
    frames : (T, H0, W0, 3) uint8 RGB frames of any size
    centres : (N,) integers in [0, T), the frames to score or train on
    size : (h, w) model input size, multiples of ``patch``
    patch : int, token size p
    offset : int, the input frames are t - offset, t, t + offset (clamped to the video)
    step : int, the motion gradient is |x(t - step) - x(t + step)| (clamped)
    out : Prepared of C-contiguous float32 NumPy arrays to write into (CPU backends),
        so that a pipeline can reuse its buffers

    Returns
    -------
    Prepared(inputs (N, 9, h, w) in [-1, 1], gradients (N, 3, h, w) in [0, 255],
    weights (N, L)), all float32; see :func:`sdmae.reference.prepare`.
    """
    _check_array(frames, "frames", 4, "(T, H0, W0, 3)", "uint8")
    t_count, h0, w0, ch = frames.shape
    if ch != 3 or t_count == 0 or h0 == 0 or w0 == 0:
        raise ValueError(f"frames must have shape (T, H0, W0, 3) with T, H0, W0 >= 1, got {tuple(frames.shape)}")
    patch = _positive_int(patch, "patch")
    h, w = _size(size, patch)
    offset = _non_negative_int(offset, "offset")
    step = _non_negative_int(step, "step")
    c = _centres(centres, t_count)
    n, l = len(c), (h // patch) * (w // patch)
    chosen = _resolve_backend(backend, _on_cuda(frames))
    if chosen == "cuda":
        if out is not None:
            raise ValueError("out is only supported by the CPU backends")
        return _prepare_cuda(frames, c, h, w, patch, offset, step)

    fa = _to_numpy(frames)
    if out is None:
        result = Prepared(np.empty((n, 9, h, w), np.float32), np.empty((n, 3, h, w), np.float32),
                          np.empty((n, l), np.float32))
    else:
        result = _check_out(out, n, h, w, l)
    if chosen == "numpy":
        for dst, src in zip(result, reference.prepare(fa, c, (h, w), patch, offset, step)):
            dst[...] = src
    else:
        _C.prepare(fa, c, h, w, patch, offset, step, *result)
    return Prepared(*(_like(a, frames) for a in result))


def _check_out(out: Any, n: int, h: int, w: int, l: int) -> Prepared:
    shapes = {"inputs": (n, 9, h, w), "gradients": (n, 3, h, w), "weights": (n, l)}
    try:
        arrays = Prepared(*out)
    except TypeError:
        raise TypeError("out must be a Prepared (inputs, gradients, weights) of NumPy arrays") from None
    for name, a in zip(Prepared._fields, arrays):
        if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable):
            raise TypeError(f"out.{name} must be a writeable C-contiguous float32 NumPy array")
        if a.shape != shapes[name]:
            raise ValueError(f"out.{name} must have shape {shapes[name]}, got {a.shape}")
    return arrays


def _prepare_cuda(frames: Any, c: np.ndarray, h: int, w: int, p: int, offset: int, step: int) -> Prepared:
    import torch

    (ft,) = _cuda_prepare_tensors(frames)
    t_count, h0, w0, _ = ft.shape
    # Each used source frame gets one slot of the resize cache (host-side bookkeeping, N*5 ints).
    wanted = np.clip(c[:, None] + np.array([-offset, 0, offset, -step, step]), 0, t_count - 1)  # (N, 5)
    slot_frames, sample_slots = np.unique(wanted, return_inverse=True)
    device = ft.device
    slot_frames_d = torch.from_numpy(slot_frames.astype(np.int64)).to(device)
    sample_slots_d = torch.from_numpy(sample_slots.reshape(-1, 5).astype(np.int64)).to(device)
    n, s = len(c), len(slot_frames)
    cache = torch.empty((s, 3, h, w), dtype=torch.float32, device=device)
    inputs = torch.empty((n, 9, h, w), dtype=torch.float32, device=device)
    gradients = torch.empty((n, 3, h, w), dtype=torch.float32, device=device)
    weights = torch.empty((n, (h // p) * (w // p)), dtype=torch.float32, device=device)
    with torch.cuda.device(device):
        _C_cuda.prepare(ft.data_ptr(), h0, w0, slot_frames_d.data_ptr(), s, sample_slots_d.data_ptr(), n, h, w, p,
                        cache.data_ptr(), inputs.data_ptr(), gradients.data_ptr(), weights.data_ptr(),
                        _stream(device))
    return Prepared(inputs, gradients, weights)


def score(target: Any, teacher: Any, student: Any, weights: Any, spec: ScoreSpec, *, hidden: Any = None,
          classification: Any = None, with_maps: bool = True, backend: str | None = None) -> Scores:
    """The back end: token errors, frame scores and pixel anomaly maps from K masked passes.

    :func:`score_passes` (fused) reads the predictions once and writes every pass's
    token values and the maps; frame scores follow from the token values by
    :func:`sdmae.score.frame_scores`, one function for every backend.

    Parameters
    ----------
    target, teacher, student, weights, spec, hidden, with_maps, backend : see :func:`score_passes`
    classification : (K, N) float32 probabilities of the classification head in each
        pass, or None; ``spec.cls_weight`` times their mean is added to the frame score

    Returns
    -------
    Scores(token_error (N, L), token_discrepancy (N, L), frame (N,), maps (N, h, w) or None),
    NumPy arrays, or tensors on target's device when target is a tensor
    """
    passes = score_passes(target, teacher, student, weights, spec, hidden=hidden, with_maps=with_maps,
                          backend=backend)
    k, n = passes.error.shape[:2]
    if classification is not None:
        _check_array(classification, "classification", 2, "(K, N)", "float32")
        if tuple(classification.shape) != (k, n):
            raise ValueError(f"classification must have shape (K, N) = {(k, n)}, got {tuple(classification.shape)}")
    if hidden is None:
        hidden = _nothing_hidden(k, n, spec.num_tokens, None)
    # the cheap half on the host: (K, N, L) values, whatever the backend
    token_error, token_discrepancy, frame = frame_scores(
        spec, _to_numpy(passes.error), _to_numpy(passes.discrepancy), _to_numpy(hidden), _to_numpy(weights),
        None if classification is None else _to_numpy(classification))
    return Scores(*(_like(a, target) for a in (token_error, token_discrepancy, frame)), passes.maps)


def score_passes(target: Any, teacher: Any, student: Any, weights: Any, spec: ScoreSpec, *, hidden: Any = None,
                 with_maps: bool = True, backend: str | None = None) -> Passes:
    """The fused half of the score: every pass's token errors and discrepancies, and the pixel maps.

    Parameters
    ----------
    target : (N, L, p*p*C) float32, patchified target (C = 4: RGB of the current
        frame and the anomaly map, whose target is ``spec.map_normal`` at test time)
    teacher : (K, N, L, p*p*C) float32, the teacher's output of each pass
        ((N, L, p*p*C) for a single pass)
    student : like teacher, or None (None: no discrepancy term)
    weights : (N, L) float32 token motion weights
    spec : :class:`sdmae.score.ScoreSpec` with (h/p) * (w/p) == L
    hidden : (K, N, L) float32, 1 where the pass hid the token from the encoder
        (None: a single pass that hid nothing, or whose masks do not matter)
    with_maps : bool, also compute the (N, h, w) pixel maps

    Returns
    -------
    Passes(error (K, N, L), discrepancy (K, N, L), maps (N, h, w) or None) on target's
    device (see :func:`sdmae.reference.score_passes`)
    """
    if not isinstance(spec, ScoreSpec):
        raise TypeError(f"spec must be a sdmae.score.ScoreSpec, got {type(spec).__name__}")
    h, w = spec.size
    l, p = spec.num_tokens, spec.patch
    _check_array(target, "target", 3, "(N, L, p*p*C)", "float32")
    n, lt, d = target.shape
    if n == 0:
        raise ValueError("target must have shape (N, L, p*p*C) with N >= 1, got an empty batch")
    if lt != l or d == 0 or d % (p * p):
        raise ValueError(f"target must have shape (N, {l}, {p}*{p}*C) for size {(h, w)} and patch {p}, "
                         f"got {tuple(target.shape)}")
    if student is None:
        student = teacher
    if getattr(teacher, "ndim", 0) == 3:  # one pass
        teacher, student = teacher[None], student[None] if getattr(student, "ndim", 0) == 3 else student
    for name, a in (("teacher", teacher), ("student", student)):
        _check_array(a, name, 4, "(K, N, L, p*p*C)", "float32")
        if tuple(a.shape[1:]) != tuple(target.shape) or a.shape[0] < 1:
            raise ValueError(f"{name} must have shape (K, *target.shape) = (K, {n}, {l}, {d}), got {tuple(a.shape)}")
    k = teacher.shape[0]
    if tuple(student.shape) != tuple(teacher.shape):
        raise ValueError(f"student must have the shape of teacher {tuple(teacher.shape)}, got {tuple(student.shape)}")
    if hidden is None:
        hidden = _nothing_hidden(k, n, l, target.device if _is_tensor(target) else None)
    _check_array(hidden, "hidden", 3, "(K, N, L)", "float32")
    if tuple(hidden.shape) != (k, n, l):
        raise ValueError(f"hidden must have shape (K, N, L) = {(k, n, l)}, got {tuple(hidden.shape)}")
    _check_array(weights, "weights", 2, "(N, L)", "float32")
    if tuple(weights.shape) != (n, l):
        raise ValueError(f"weights must have shape (N, L) = {(n, l)}, got {tuple(weights.shape)}")

    chosen = _resolve_backend(backend, _on_cuda(target, teacher, student, hidden, weights))
    if chosen == "cuda":
        return _score_passes_cuda(target, teacher, student, hidden, weights, spec, with_maps)
    tg, te, st, hd, wt = (_to_numpy(a) for a in (target, teacher, student, hidden, weights))
    if chosen == "numpy":
        result = reference.score_passes(tg, te, st, hd, wt, spec, with_maps)
    else:
        result = Passes(np.empty((k, n, l), np.float32), np.empty((k, n, l), np.float32),
                        np.empty((n, h, w), np.float32) if with_maps else None)
        _C.score_passes(tg, te, st, hd, wt, _kernel_spec(_C, spec), *result)
    return Passes(*(_like(a, target) for a in result))


def _nothing_hidden(k: int, n: int, l: int, device: Any) -> Any:
    """The default ``hidden``: (K, N, L) float32 zeros (no pass hid anything), a NumPy
    array, or a tensor on ``device``."""
    hidden = np.zeros((k, n, l), np.float32)
    if device is None:
        return hidden
    import torch

    return torch.as_tensor(hidden, device=device)


def _kernel_spec(module: Any, spec: ScoreSpec) -> Any:
    """The extension's ScoreSpec: the fields its kernels read, under the same names."""
    return module.ScoreSpec(patch=spec.patch, size=spec.size, map_normal=spec.map_normal, tokens=spec.tokens,
                            map_channel_weight=spec.map_channel_weight,
                            discrepancy_weight=spec.discrepancy_weight, map_weight=spec.map_weight)


def _score_passes_cuda(target: Any, teacher: Any, student: Any, hidden: Any, weights: Any, spec: ScoreSpec,
                       with_maps: bool) -> Passes:
    import torch

    tg, te, st, hd, wt = _cuda_prepare_tensors(target, teacher, student, hidden, weights)
    k, n, l, _ = te.shape
    device = tg.device
    error = torch.empty((k, n, l), dtype=torch.float32, device=device)
    discrepancy = torch.empty((k, n, l), dtype=torch.float32, device=device)
    maps = torch.empty((n, *spec.size), dtype=torch.float32, device=device) if with_maps else None
    with torch.cuda.device(device):
        _C_cuda.score_passes(tg, te, st, hd, wt, _kernel_spec(_C_cuda, spec), error, discrepancy, maps,
                             _stream(device))
    return Passes(error, discrepancy, maps)
