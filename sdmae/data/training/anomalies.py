"""Synthetic anomalies for training: foreign objects pasted moving through a clip.

The paper's augmentation: with probability 0.25 a training sample gets an
object sequence pasted into its input frames, moving, so it shows in the
motion gradients too. The reconstruction target stays the clean centre
frame (the model learns to "overlook" the object) and the object's mask is
the target of the anomaly-map channel.

Objects come from an :class:`ObjectBank` of RGBA cut-outs: a built-in bank
cut from scikit-image's sample photos, any folder of RGBA PNGs, or the
annotated abnormal objects of UBnormal (the paper's source).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from sdmae.errors import SdmaeError


class ObjectError(SdmaeError):
    """Cut-outs or object tracks that cannot be pasted (the message names the file or source)."""

__all__ = ["ObjectBank", "ObjectTrack", "maybe_paste", "paste_moving_object"]

_MAX_SIDE = 128  # objects are stored at most this big: pasting never needs more


def _resize_premultiplied(obj: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize an RGBA cut-out without dark fringes.

    Returns premultiplied colour ``(h, w, 3)`` and alpha ``(h, w)``, float32
    (colour in 0..255, alpha in 0..1), the form alpha blending needs.
    """
    from skimage.transform import resize

    a = obj[..., 3:4].astype(np.float32) / 255.0
    pm = np.concatenate([obj[..., :3].astype(np.float32) * a, a], axis=2)
    anti = h < obj.shape[0] or w < obj.shape[1]
    pm = resize(pm, (h, w), order=1, anti_aliasing=anti, preserve_range=True).astype(np.float32)
    alpha = np.clip(pm[..., 3], 0.0, 1.0)
    return np.clip(pm[..., :3], 0.0, 255.0 * alpha[..., None]), alpha


def _check_rgba(obj, where: str) -> np.ndarray:
    obj = np.asarray(obj)
    if obj.ndim != 3 or obj.shape[2] != 4 or obj.dtype != np.uint8:
        raise ObjectError(f"{where}: expected an (h, w, 4) uint8 RGBA array, got {obj.shape} {obj.dtype}")
    if not obj[..., 3].any():
        raise ObjectError(f"{where}: the alpha channel is empty (fully transparent)")
    return obj


def _to_stored(obj: np.ndarray, where: str, scale: float | None = None) -> np.ndarray:
    """Validate one cut-out, crop it to its alpha, shrink it to _MAX_SIDE (or by ``scale``)."""
    obj = _check_rgba(obj, where)
    ys, xs = np.nonzero(obj[..., 3])
    obj = obj[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = obj.shape[:2]
    k = min(1.0, _MAX_SIDE / max(h, w)) if scale is None else scale
    if k < 1.0:
        nh, nw = max(1, round(h * k)), max(1, round(w * k))
        col, alpha = _resize_premultiplied(obj, nh, nw)
        rgb = col / np.maximum(alpha, 1e-6)[..., None]  # un-premultiply for storage
        obj = np.dstack([rgb, alpha * 255]).clip(0, 255).round().astype(np.uint8)
    obj = np.ascontiguousarray(obj)
    obj.setflags(write=False)
    return obj


class ObjectTrack(NamedTuple):
    """One object followed through consecutive frames: pasted, it moves along its
    real track with its own motion (UBnormal's annotated abnormal objects).

    frames : tuple of (h, w, 4) ndarray of uint8, RGBA cropped to alpha, read-only
    offsets : (n, 2) ndarray of float64, top-left (y, x) of each frame relative to
        the first, in the stored frames' pixels
    """

    frames: tuple
    offsets: np.ndarray


def _to_stored_track(track: ObjectTrack, where: str) -> ObjectTrack:
    """Validate a track and shrink it (one factor for all frames) to _MAX_SIDE."""
    frames = [np.asarray(f) for f in track.frames]
    offsets = np.asarray(track.offsets, np.float64).reshape(-1, 2)
    if not frames or len(frames) != len(offsets):
        raise ObjectError(f"{where}: a track needs frames and one (y, x) offset per frame")
    side = max(max(f.shape[:2]) for f in frames if f.ndim == 3)
    k = min(1.0, _MAX_SIDE / side)
    stored, shifts = [], []
    for i, f in enumerate(frames):
        f = _check_rgba(f, f"{where} frame {i}")
        ys, xs = np.nonzero(f[..., 3])
        shifts.append((ys.min(), xs.min()))
        stored.append(_to_stored(f, f"{where} frame {i}", scale=k))
    return ObjectTrack(tuple(stored), (offsets + np.array(shifts, np.float64)) * k)


def _ellipse(shape, cy, cx, ry, rx) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _rgba(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.dstack([img, mask.astype(np.uint8) * 255])


def _builtin_objects() -> tuple[np.ndarray, ...]:
    # Masks are simple geometric or threshold cuts: deterministic and fast (~0.2 s).
    from scipy import ndimage as ndi
    from skimage import data

    objs = []
    cup = data.coffee()  # cup on its saucer
    objs.append(_rgba(cup, _ellipse(cup.shape, 240, 272, 148, 200) | _ellipse(cup.shape, 150, 286, 135, 118)))
    cat = data.chelsea()  # the cat's face
    objs.append(_rgba(cat, _ellipse(cat.shape, 150, 235, 135, 150)))
    astro = data.astronaut()  # head and shoulders
    m = _ellipse(astro.shape, 105, 232, 88, 64) | _ellipse(astro.shape, 420, 250, 230, 175)
    m[170:230, 190:280] = True
    objs.append(_rgba(astro, m))
    rocket = data.rocket()  # the bright rocket against the night sky
    win = np.zeros(rocket.shape[:2], bool)
    win[105:368, 308:340] = True
    lab, _ = ndi.label(ndi.binary_closing((rocket.mean(axis=2) > 110) & win, iterations=2))
    objs.append(_rgba(rocket, ndi.binary_fill_holes(lab == np.bincount(lab.ravel())[1:].argmax() + 1)))
    horse = ~data.horse()  # silhouette, dressed in a texture
    for tex, tint in ((data.grass(), (150, 95, 55)), (data.gravel(), (60, 60, 70))):
        t = tex[: horse.shape[0], : horse.shape[1]].astype(np.float32)[..., None] / 255.0
        objs.append(_rgba(np.clip(np.array(tint) * (0.6 + 0.8 * t), 0, 255).astype(np.uint8), horse))
    logo = data.logo()[..., :3]
    ys, xs = np.nonzero(logo.min(axis=2) < 230)
    cy, cx, ry, rx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2, np.ptp(ys) / 2, np.ptp(xs) / 2
    objs.append(_rgba(logo, _ellipse(logo.shape, cy, cx, ry, rx)))
    return tuple(objs)


class ObjectBank:
    """RGBA cut-outs to paste as synthetic anomalies.

    Parameters
    ----------
    objects : iterable of (h, w, 4) ndarray of uint8, or of ObjectTrack
        RGBA; alpha is the object's mask. Each is cropped to its alpha and
        stored at most 128 px on its longer side (read-only). A still cut-out
        is pasted moving in a straight line; an :class:`ObjectTrack` moves
        along its own track, frame by frame.
    name : str
        Where the objects come from, for messages.
    """

    def __init__(self, objects: Iterable[np.ndarray], name: str = "objects"):
        self.name = name
        self.objects = tuple(_to_stored_track(o, f"{name}[{i}]") if isinstance(o, ObjectTrack)
                             else _to_stored(o, f"{name}[{i}]") for i, o in enumerate(objects))
        if not self.objects:
            raise ObjectError(f"{name}: an ObjectBank needs at least one object")

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, i: int) -> np.ndarray | ObjectTrack:
        return self.objects[i]

    def __iter__(self):
        return iter(self.objects)

    def __repr__(self) -> str:
        return f"ObjectBank({self.name!r}, {len(self)} objects)"

    @classmethod
    def builtin(cls) -> "ObjectBank":
        """Cut-outs from scikit-image's sample images.

        A coffee cup, a cat's face, an astronaut, a rocket, two textured
        horse silhouettes and a logo; built once per process and shared
        (objects are read-only).
        """
        return _builtin_bank()

    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> "ObjectBank":
        """Load every RGBA image (``.png``, ``.webp``, ``.tif``) of a folder.

        Raises
        ------
        FileNotFoundError
            The folder does not exist.
        ValueError
            No image in the folder, or an image without an alpha channel (the
            message names the file).
        """
        from PIL import Image

        from sdmae.data.video import _natural_key

        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"object folder not found: {folder}")
        files = sorted(
            (
                p
                for p in folder.iterdir()
                if p.suffix.lower() in (".png", ".webp", ".tif", ".tiff") and not p.name.startswith(".")
            ),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            raise ObjectError(f"{folder}: no RGBA cut-outs (.png, .webp, .tif) in this folder")
        objs = []
        for f in files:
            try:
                with Image.open(f) as im:
                    if "A" not in im.getbands() and "transparency" not in im.info:
                        raise ObjectError(f"{f}: no alpha channel; cut-outs need alpha as their mask")
                    objs.append(np.asarray(im.convert("RGBA")))
            except (OSError, SyntaxError) as exc:  # PIL's errors for a damaged image do not name the file
                raise ObjectError(f"{f}: not a readable image ({exc})") from None
        return cls(objs, str(folder))

    @classmethod
    def from_ubnormal(
        cls,
        root: str | os.PathLike,
        split: str = "train",
        max_objects: int = 200,
        min_height: int = 16,
        max_frames: int = 32,
    ) -> "ObjectBank":
        """Cut UBnormal's annotated abnormal objects out of their videos, as tracks.

        Every abnormal track of the split becomes an :class:`ObjectTrack`: the
        object cut with its per-frame id mask from up to ``max_frames``
        consecutive frames in the middle of the track, with its position in each,
        so a pasted object moves frame by frame along its real track (the
        paper's augmentation). Each video is decoded once.

        Parameters
        ----------
        root : str or PathLike
            UBnormal root (``Scene*/`` folders and split files).
        split : {"train", "validation", "test"}
        max_objects : int
            Stop after this many tracks.
        min_height : int
            Skip objects shorter than this (pixels) in the track's middle frame.
        max_frames : int
            Frames kept per track.
        """
        from scipy import ndimage as ndi

        from sdmae.data.layouts import load_dataset
        from sdmae.data.video import read_label_image

        tracks_out: list[ObjectTrack] = []
        for rec in load_dataset(root, "ubnormal", split):
            tracks, files = rec.meta.get("object_tracks"), rec.meta.get("gt_files")
            if not tracks or not files or len(tracks_out) >= max_objects:
                continue
            wanted: dict[int, list[int]] = {}  # frame -> track ids to cut there
            for oid, a, b in tracks:
                have = [t for t in range(a, b + 1) if t in files]
                mid = len(have) // 2
                for t in have[max(0, mid - max_frames // 2): max(0, mid - max_frames // 2) + max_frames]:
                    wanted.setdefault(t, []).append(oid)
            cuts: dict[int, list] = {}  # track id -> [(rgba, (y0, x0))]
            last = max(wanted, default=-1)
            for t, frame in enumerate(rec.iter_frames()):
                if t > last:
                    break
                if t not in wanted:
                    continue
                ids = read_label_image(files[t])
                for oid in wanted[t]:
                    mask = ids == oid if rec.meta.get("ids_in_masks", True) else ids != 0
                    lab, n = ndi.label(mask)
                    if n == 0:
                        continue
                    mask = lab == np.bincount(lab.ravel())[1:].argmax() + 1  # main part
                    ys, xs = np.nonzero(mask)
                    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
                    cuts.setdefault(oid, []).append((_rgba(frame[sl], mask[sl]), (ys.min(), xs.min())))
            for oid, seq in cuts.items():
                if len(tracks_out) >= max_objects or seq[len(seq) // 2][0].shape[0] < min_height:
                    continue
                origin = np.array(seq[0][1], np.float64)
                tracks_out.append(ObjectTrack(tuple(c for c, _ in seq),
                                              np.array([pos for _, pos in seq], np.float64) - origin))
        if not tracks_out:
            raise ObjectError(f"{root}: no annotated abnormal objects in the {split!r} split")
        return cls(tracks_out, f"ubnormal:{split}")

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> "ObjectBank":
        """A folder of RGBA cut-outs, or a UBnormal root (its abnormal training objects)."""
        from sdmae.data.layouts import detect_layout

        folder = Path(path)
        if folder.is_dir() and any(folder.glob("Scene*")):
            try:
                if detect_layout(folder) == "ubnormal":
                    return cls.from_ubnormal(folder, "train")
            except (FileNotFoundError, ValueError):
                pass
        return cls.from_folder(folder)


@functools.lru_cache(maxsize=1)
def _builtin_bank() -> ObjectBank:
    return ObjectBank(_builtin_objects(), "builtin")


def _check_clip(clip: np.ndarray) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[3] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"clip must be (K, H, W, 3) uint8, got {clip.shape} {clip.dtype}")
    return clip


def paste_moving_object(
    clip: np.ndarray,
    bank: ObjectBank | None = None,
    rng: np.random.Generator | None = None,
    *,
    scale: tuple[float, float] = (0.10, 0.35),
    speed: tuple[float, float] = (2.0, 8.0),
    max_rotation: float = 30.0,
    flip: bool = True,
    centre: int | None = None,
    grey: bool = False,
    blur: float = 0.0,
    max_area: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste one object moving in a straight line through consecutive frames.

    Parameters
    ----------
    clip : (K, H, W, 3) ndarray of uint8
        Consecutive frames (training uses K = 7: t-3 .. t+3). Not modified.
    bank : ObjectBank, optional
        Where to pick the object; :meth:`ObjectBank.builtin` by default.
    rng : np.random.Generator
        Source of every random choice (object, size, flip, rotation, path).
    scale : (float, float)
        Range of the object's height as a fraction of H (its width is capped
        at 0.8 W).
    speed : (float, float)
        Range of a still cut-out's speed in px/frame, in a uniformly random
        direction (an :class:`ObjectTrack` moves along its own track).
    max_rotation : float
        Rotation drawn from [-max_rotation, max_rotation] degrees.
    flip : bool
        Mirror the object left-right with probability 0.5.
    centre : int, optional
        Frame where the object is fully inside the frame; K // 2 by default.
    grey : bool
        Paste the object in greyscale (the authors' augmentation: the model
        cannot learn "unusual colour" as the sign of an anomaly).
    blur : float
        Gaussian blur of the object's colour and alpha, sigma in pixels.
    max_area : float, optional
        Cap on the object's area as a fraction of H * W (the authors' objects
        are at most ~5000 px at 320x640, 0.024); its size is then drawn
        so that the area is uniform in [max_area / 4, max_area].

    Returns
    -------
    pasted : (K, H, W, 3) ndarray of uint8
        A new array; pixels differ from ``clip`` only where ``masks > 0``.
    masks : (K, H, W) ndarray of float32
        The object's alpha in [0, 1] per frame.
    """
    from skimage.transform import rotate

    clip = _check_clip(clip)
    if rng is None:
        raise TypeError("pass rng=np.random.default_rng(seed): the augmentation is seeded explicitly")
    bank = ObjectBank.builtin() if bank is None else bank
    K, H, W = clip.shape[:3]
    c = K // 2 if centre is None else int(centre)
    if not 0 <= c < K:
        raise ValueError(f"centre {c} outside the clip's {K} frames")
    obj = bank[int(rng.integers(len(bank)))]
    track = obj if isinstance(obj, ObjectTrack) else None
    if track is not None:
        # K consecutive frames of the track (played back and forth if it is shorter)
        n = len(track.frames)
        if n >= K:
            j0 = int(rng.integers(n - K + 1))
            which = list(range(j0, j0 + K))
        else:
            cycle = list(range(n)) + list(range(n - 2, 0, -1)) or [0]
            which = [cycle[k % len(cycle)] for k in range(K)]
        obj = track.frames[which[c]]
    oh, ow = obj.shape[:2]
    if max_area is not None:
        # alpha covers part of the box: size the box so the object's own area is the draw
        fill = max(float(obj[..., 3].mean()) / 255.0, 0.05)
        area = rng.uniform(0.25, 1.0) * max_area * H * W / fill
        h = math.sqrt(area * oh / ow)
    else:
        h = rng.uniform(*scale) * H
    w = h * ow / oh
    if w > 0.8 * W:
        h, w = h * 0.8 * W / w, 0.8 * W
    zoom = h / oh
    mirror = flip and rng.random() < 0.5
    ang = rng.uniform(-max_rotation, max_rotation) if max_rotation else 0.0

    def sprite(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col, alpha = _resize_premultiplied(rgba, max(2, round(rgba.shape[0] * zoom)),
                                           max(2, round(rgba.shape[1] * zoom)))
        if grey:
            col = np.repeat(col @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(col.shape)
        if blur > 0:
            from scipy.ndimage import gaussian_filter

            col = gaussian_filter(col, (blur, blur, 0))
            alpha = gaussian_filter(alpha, blur)
        if mirror:
            col, alpha = col[:, ::-1], alpha[:, ::-1]
        if ang:
            col = rotate(col, ang, resize=True, order=1, preserve_range=True).astype(np.float32)
            alpha = rotate(alpha, ang, resize=True, order=1, preserve_range=True).astype(np.float32)
        return col, alpha

    if track is None:  # a still cut-out, moving in a straight line in a random direction
        sprites = [sprite(obj)] * K
        v, theta = rng.uniform(*speed), rng.uniform(0, 2 * math.pi)
        shifts = [(v * math.sin(theta) * (k - c), v * math.cos(theta) * (k - c)) for k in range(K)]
    else:  # its own frames, along its own track (top-left positions, scaled like the object)
        cache = {j: sprite(track.frames[j]) for j in set(which)}
        sprites = [cache[j] for j in which]
        rel = (track.offsets[which] - track.offsets[which[c]]) * zoom  # (K, 2)
        if mirror:
            rel[:, 1] = -rel[:, 1] + (track.frames[which[c]].shape[1] - np.array(
                [track.frames[j].shape[1] for j in which])) * zoom
        shifts = [tuple(r) for r in rel]
    sh, sw = sprites[c][1].shape
    # Fully visible at the centre frame (when it fits).
    y_c = rng.uniform(0, max(H - sh, 0))
    x_c = rng.uniform(0, max(W - sw, 0))
    out = clip.copy()
    masks = np.zeros((K, H, W), np.float32)
    for k, ((col, alpha), (dy, dx)) in enumerate(zip(sprites, shifts)):
        sh, sw = alpha.shape
        y0, x0 = int(round(y_c + dy)), int(round(x_c + dx))
        fy0, fx0, fy1, fx1 = max(y0, 0), max(x0, 0), min(y0 + sh, H), min(x0 + sw, W)
        if fy1 <= fy0 or fx1 <= fx0:
            continue  # left the frame
        a = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
        region = out[k, fy0:fy1, fx0:fx1].astype(np.float32)
        blended = col[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] + region * (1 - a[..., None])
        keep = (a > 0)[..., None]  # bit-exact outside the object
        out[k, fy0:fy1, fx0:fx1] = np.where(keep, np.clip(blended + 0.5, 0, 255), region).astype(np.uint8)
        masks[k, fy0:fy1, fx0:fx1] = a
    return out, masks


def maybe_paste(
    clip: np.ndarray,
    bank: ObjectBank | None = None,
    rng: np.random.Generator | None = None,
    probability: float = 0.25,
    **kwargs,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Apply :func:`paste_moving_object` with a given probability.

    Parameters
    ----------
    clip : (K, H, W, 3) ndarray of uint8
        Not modified.
    bank : ObjectBank, optional
    rng : np.random.Generator
        One draw decides; the paste then draws its own parameters.
    probability : float
        Chance of pasting (the paper uses 0.25).
    **kwargs
        Passed to :func:`paste_moving_object` (``centre``, ``scale``, ...).

    Returns
    -------
    clip_out : (K, H, W, 3) ndarray of uint8
        The input array itself when nothing was pasted, else a new array.
    centre_mask : (H, W) ndarray of float32
        The object's alpha at the centre frame (the anomaly-map target);
        zeros when nothing was pasted.
    pasted : bool
    """
    clip = _check_clip(clip)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    if rng is None:
        raise TypeError("pass rng=np.random.default_rng(seed): the augmentation is seeded explicitly")
    if rng.random() >= probability:
        return clip, np.zeros(clip.shape[1:3], np.float32), False
    out, masks = paste_moving_object(clip, bank, rng, **kwargs)
    c = kwargs.get("centre")
    return out, masks[clip.shape[0] // 2 if c is None else c], True
