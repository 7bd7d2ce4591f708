"""Synthetic surveillance scenes: the embedded default dataset for demos and tests.

A static camera looks at a street front: a brick wall with a poster and a
door (scikit-image's ``brick`` texture and ``rocket`` photo), a grass strip,
and a gravel walkway where people walk left to right in three lanes at
walking speed (1-2 px/frame at 160 px width). Normal behaviour is regular on
purpose: three clothing styles, one direction, lane speeds, so a small model
learns it from a few hundred frames.

Test clips add labelled anomalies (each visible 20-60 frames), drawn in
bright colours that training never shows:

``running``       a person running with the flow at 4-5x walking speed
``against_flow``  a person walking right to left, twice walking speed
``vehicle``       a car driving along the walkway
``thrown``        a spinning ball thrown across the scene on a parabola
``erratic``       a person moving in jerky, zig-zag bursts across the lanes

Shapes are drawn from signed distance functions with analytic
anti-aliasing, so motion is smooth at sub-pixel speeds and masks are exact.
:func:`make_clip` renders in memory; :func:`make_dataset` writes a dataset
in any layout that :func:`sdmae.data.load_dataset` reads back.

Demo default (``make_dataset(root)``): Avenue layout, 4 training and 4 test
videos of 180 frames at 120x160, 25 fps, about 40 % of test frames abnormal.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from sdmae.data.devsets.writing import LabelledClip, up_to_date, write_dataset
from sdmae.data.layouts import LAYOUTS

__all__ = ["ANOMALY_KINDS", "DEFAULT_SIZE", "make_background", "make_clip", "make_dataset"]

ANOMALY_KINDS = ("running", "against_flow", "vehicle", "thrown", "erratic")
DEFAULT_SIZE = (120, 160)
_MARKER = ".sdmae-synthetic.json"

# (feet row, figure height), as fractions of H: far lanes are higher and smaller.
_LANES = ((0.56, 0.19), (0.74, 0.22), (0.93, 0.25))
_LANE_SPEED = (1.2, 1.5, 1.8)  # px/frame at W = 160

# Muted clothing for normal walkers: shirt, trousers, skin, hair, bag (None: no bag).
_NORMAL_STYLES = (
    ((82, 92, 110), (48, 48, 56), (196, 160, 132), (50, 40, 35), None),
    ((120, 100, 80), (60, 64, 80), (170, 130, 100), (30, 25, 20), (70, 60, 50)),
    ((96, 110, 90), (70, 62, 55), (205, 170, 140), (90, 70, 50), None),
)
# Bright clothing, only ever worn by anomalous actors.
_BRIGHT_STYLES = (
    ((230, 40, 40), (30, 40, 170), (196, 160, 132), (40, 30, 25), None),
    ((250, 205, 20), (190, 30, 150), (170, 130, 100), (30, 25, 20), (20, 170, 60)),
    ((20, 200, 215), (240, 120, 20), (205, 170, 140), (90, 60, 30), None),
)
_BRIGHT = ((225, 35, 35), (245, 200, 20), (30, 90, 220), (240, 120, 20), (30, 190, 90))


# --------------------------------------------------------------------------- shapes
# Signed distances (negative inside) on a pixel grid; coverage = clip(0.5 - d, 0, 1)
# is a one-pixel anti-aliased edge.


def _sdf(yy, xx, prim):
    kind, p = prim[0], prim[1]
    if kind == "disk":
        cy, cx, r = p
        return np.hypot(yy - cy, xx - cx) - r
    if kind == "capsule":
        y0, x0, y1, x1, r = p
        dy, dx = y1 - y0, x1 - x0
        h = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
        return np.hypot(yy - y0 - h * dy, xx - x0 - h * dx) - r
    cy, cx, ry, rx, ang = p[:5]
    c, s = math.cos(ang), math.sin(ang)
    u = (xx - cx) * c + (yy - cy) * s
    v = (yy - cy) * c - (xx - cx) * s
    if kind == "ellipse":
        return (np.hypot(u / rx, v / ry) - 1.0) * min(rx, ry)
    rad = p[5]  # "box": rotated rounded rectangle, half sizes ry, rx
    qx, qy = np.abs(u) - (rx - rad), np.abs(v) - (ry - rad)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - rad


def _extent(prim) -> tuple[float, float, float, float]:
    kind, p = prim[0], prim[1]
    if kind == "disk":
        return p[0] - p[2], p[1] - p[2], p[0] + p[2], p[1] + p[2]
    if kind == "capsule":
        y0, x0, y1, x1, r = p
        return min(y0, y1) - r, min(x0, x1) - r, max(y0, y1) + r, max(x0, x1) + r
    r = math.hypot(p[2], p[3])
    return p[0] - r, p[1] - r, p[0] + r, p[1] + r


def _render_sprite(prims, H, W):
    """Composite primitives back to front on their bounding box.

    Returns ``(y0, x0, colour (h, w, 3) premultiplied, alpha (h, w))`` or None
    when the sprite lies outside the frame.
    """
    ext = np.array([_extent(p) for p in prims])
    y0, x0 = max(int(math.floor(ext[:, 0].min())) - 1, 0), max(int(math.floor(ext[:, 1].min())) - 1, 0)
    y1, x1 = min(int(math.ceil(ext[:, 2].max())) + 2, H), min(int(math.ceil(ext[:, 3].max())) + 2, W)
    if y1 <= y0 or x1 <= x0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    col = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
    for prim in prims:
        a = np.clip(0.5 - _sdf(yy, xx, prim), 0.0, 1.0) * prim[3]
        col = np.asarray(prim[2], np.float32) * a[..., None] + col * (1 - a[..., None])
        alpha = a + alpha * (1 - a)
    return y0, x0, col, alpha


# --------------------------------------------------------------------------- actors


@dataclass
class _Actor:
    """Something moving through the scene along a precomputed path."""

    kind: str  # "person", "vehicle" or "ball"
    t0: int  # frame of path[0]
    xs: np.ndarray  # (n,) float: x of the centre per frame
    ys: np.ndarray  # (n,) float: y of the ground contact (ball: its centre)
    h: float  # height in px
    colors: tuple
    oid: int = 0  # > 0: anomaly id (ground truth)
    tag: str = "normal"  # anomaly kind
    run: bool = False
    spin: float = 0.0
    phase: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        # Legs swing once per ~half a body height travelled (longer strides running).
        stride = (1.0 if self.run else 0.55) * self.h
        step = np.abs(np.diff(self.xs, prepend=self.xs[0])) + np.abs(np.diff(self.ys, prepend=self.ys[0]))
        self.phase = np.pi * np.cumsum(step) / stride

    def shifted(self, t0: int) -> "_Actor":
        return dataclasses.replace(self, t0=t0)

    def alive(self, t: int) -> bool:
        return 0 <= t - self.t0 < len(self.xs)

    def depth(self, t: int) -> float:
        return np.inf if self.kind == "ball" else self.ys[t - self.t0]

    def prims(self, t: int) -> list:
        k = t - self.t0
        x, y = float(self.xs[k]), float(self.ys[k])
        if self.kind == "person":
            nxt = self.xs[min(k + 1, len(self.xs) - 1)] - self.xs[max(k - 1, 0)]
            return _person(x, y, self.h, float(self.phase[k]), 1.0 if nxt >= 0 else -1.0, self.run, self.colors)
        if self.kind == "vehicle":
            face = 1.0 if self.xs[-1] >= self.xs[0] else -1.0
            return _vehicle(x, y, self.h, face, float(self.phase[k]), self.colors)
        return _ball(x, y, self.h, self.spin * k, self.colors)


def _person(x, y, h, phase, face, run, colors):
    shirt, trousers, skin, hair, bag = colors
    amp, lean = (0.75, 0.22) if run else (0.42, 0.04)
    swing = amp * math.sin(phase)
    bob = (0.05 if run else 0.02) * h * abs(math.sin(phase))
    y = y - bob
    # Body parts hang off one leaning axis, so limbs stay attached when running.
    uy, ux = -math.cos(lean), face * math.sin(lean)  # unit vector up the spine
    ty, tx = y - 0.62 * h, x + face * lean * 0.3 * h  # torso centre
    hip_y, hip_x = ty - 0.14 * h * uy, tx - 0.14 * h * ux
    sh_y, sh_x = ty + 0.13 * h * uy, tx + 0.13 * h * ux
    head_y, head_x = ty + 0.29 * h * uy, tx + 0.29 * h * ux
    leg, arm = 0.47 * h, 0.36 * h

    def limb(py, px, length, ang, r, c):
        return ("capsule", (py, px, py + length * math.cos(ang), px + face * length * math.sin(ang), r), c, 1.0)

    dark = lambda c: tuple(0.75 * v for v in c)  # far limbs in shade
    out = [("ellipse", (y, x, 0.05 * h, 0.22 * h, 0.0), (0, 0, 0), 0.35)]  # shadow
    out.append(limb(hip_y, hip_x, leg, swing, 0.06 * h, dark(trousers)))
    out.append(limb(sh_y, sh_x, arm, -0.8 * swing, 0.045 * h, dark(shirt)))
    out.append(("ellipse", (ty, tx, 0.19 * h, 0.115 * h, face * lean), shirt, 1.0))
    if bag is not None:
        box = (ty + 0.04 * h * uy, tx - face * 0.13 * h, 0.11 * h, 0.05 * h, face * lean, 0.02 * h)
        out.append(("box", box, bag, 1.0))
    out.append(("disk", (head_y, head_x, 0.085 * h), skin, 1.0))
    out.append(("disk", (head_y - 0.025 * h, head_x - face * 0.025 * h, 0.075 * h), hair, 1.0))
    out.append(limb(hip_y, hip_x, leg, -swing, 0.06 * h, trousers))
    out.append(limb(sh_y, sh_x, arm, 0.8 * swing, 0.045 * h, shirt))
    return out


def _vehicle(x, y, h, face, phase, colors):
    body, = colors
    L = 2.6 * h  # length
    wheel = 0.16 * h
    out = [("ellipse", (y, x, 0.08 * h, 0.55 * L, 0.0), (0, 0, 0), 0.4)]
    out.append(("box", (y - 0.38 * h, x, 0.24 * h, 0.5 * L, 0.0, 0.1 * h), body, 1.0))
    out.append(("box", (y - 0.72 * h, x - face * 0.06 * L, 0.2 * h, 0.28 * L, 0.0, 0.12 * h), body, 1.0))
    out.append(("box", (y - 0.72 * h, x - face * 0.06 * L, 0.13 * h, 0.23 * L, 0.0, 0.05 * h), (185, 215, 235), 1.0))
    out.append(("box", (y - 0.72 * h, x - face * 0.06 * L, 0.14 * h, 0.015 * L, 0.0, 0.0), body, 1.0))
    out.append(("disk", (y - 0.45 * h, x + face * 0.47 * L, 0.06 * h), (255, 240, 170), 1.0))
    for wx in (-0.3 * L, 0.3 * L):
        out.append(("disk", (y - wheel, x + wx, wheel), (25, 25, 28), 1.0))
        # A spoke mark turning with distance shows the wheels roll.
        a = face * phase * 1.1  # phase grows pi per 0.55 h travelled; wheel radius 0.16 h
        spoke = (y - wheel + 0.5 * wheel * math.cos(a), x + wx + 0.5 * wheel * math.sin(a), 0.25 * wheel)
        out.append(("disk", spoke, (150, 150, 150), 1.0))
    return out


def _ball(x, y, h, ang, colors):
    c1, c2 = colors
    r = 0.5 * h
    dy, dx = r * math.cos(ang), r * math.sin(ang)
    return [("disk", (y, x, r), c1, 1.0), ("capsule", (y - dy, x - dx, y + dy, x + dx, 0.25 * r), c2, 1.0)]


# --------------------------------------------------------------------------- scene


def _texture(img, h, w, rng, scale):
    """A random crop of a 512x512 texture, resized to (h, w), normalised to zero mean, unit std."""
    from skimage.transform import resize

    ch, cw = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
    ch, cw = min(ch, img.shape[0]), min(cw, img.shape[1])
    oy, ox = rng.integers(0, img.shape[0] - ch + 1), rng.integers(0, img.shape[1] - cw + 1)
    t = resize(img[oy : oy + ch, ox : ox + cw].astype(np.float32), (h, w), anti_aliasing=True)
    return (t - t.mean()) / (t.std() + 1e-6)


@functools.lru_cache(maxsize=8)
def _background(H: int, W: int, scene: int) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    rng = np.random.default_rng([scene, 0x5CE7E])
    wall_end, grass_end = int(round(0.30 * H)), int(round(0.38 * H))
    bg = np.empty((H, W, 3), np.float32)
    k = 512.0 / max(W, 1) * rng.uniform(0.8, 1.1)  # texture px per frame px
    tint = np.array([150, 88, 70]) * rng.uniform(0.9, 1.1, 3)
    brick = np.ascontiguousarray(data.brick().T)  # courses horizontal
    bg[:wall_end] = tint * (1 + 0.22 * _texture(brick, wall_end, W, rng, k)[..., None])
    bg[wall_end:grass_end] = np.array([78, 112, 58]) * (
        1 + 0.25 * _texture(data.grass(), grass_end - wall_end, W, rng, k)[..., None]
    )
    walk_h = H - grass_end
    paving = 0.10 * _texture(data.gravel(), walk_h, W, rng, k) + 0.05 * _texture(brick, walk_h, W, rng, k / 2)
    ramp = np.linspace(0.92, 1.08, walk_h, dtype=np.float32)[:, None]  # nearer is brighter
    bg[grass_end:] = np.array([150, 143, 130]) * (ramp * (1 + paving))[..., None]
    bg[grass_end : grass_end + max(1, H // 60)] = (175, 172, 165)  # kerb
    # A door and a poster (a real photo) on the wall.
    dw, dh = max(3, int(0.07 * W)), max(3, int(0.2 * H))
    dx = int(rng.uniform(0.05, 0.3) * W)
    bg[wall_end - dh : wall_end, dx : dx + dw] = (52, 44, 42)
    ph, pw = max(4, int(0.17 * H)), max(4, int(0.22 * W))
    py, px = max(1, int(0.05 * H)), int(rng.uniform(0.45, 0.95) * W - pw)
    poster = resize(data.rocket()[60:400, 120:560], (ph, pw), anti_aliasing=True) * 255
    bg[py - 1 : py + ph + 1, px - 1 : px + pw + 1] = (35, 35, 35)
    bg[py : py + ph, px : px + pw] = poster
    # Lens vignetting.
    yy, xx = np.mgrid[0:H, 0:W]
    r2 = ((yy - H / 2) / H) ** 2 + ((xx - W / 2) / W) ** 2
    bg *= (1 - 0.35 * r2)[..., None]
    bg = np.clip(bg, 0, 255)
    bg.setflags(write=False)
    return bg


def make_background(size: tuple[int, int] = DEFAULT_SIZE, scene: int = 0) -> np.ndarray:
    """The empty scene seen by the static camera.

    Parameters
    ----------
    size : (H, W)
    scene : int
        Scene seed: textures crops, tints, door and poster placement.

    Returns
    -------
    background : (H, W, 3) ndarray of uint8
    """
    return np.round(_background(int(size[0]), int(size[1]), int(scene))).astype(np.uint8)


# --------------------------------------------------------------------------- paths


def _lane(H, i, rng, jitter=1.0):
    fy, fh = _LANES[i]
    return fy * H + rng.uniform(-jitter, jitter), fh * H


def _straight(x0, x1, speed, y):
    n = int(math.ceil(abs(x1 - x0) / speed)) + 1
    xs = x0 + np.sign(x1 - x0) * speed * np.arange(n)
    return xs, np.full(n, y)


def _normal_walkers(T, H, W, rng, t_from=-400):
    sc = W / 160.0
    actors = []
    for lane in range(len(_LANES)):
        speed0 = _LANE_SPEED[lane] * sc
        t = t_from + int(rng.integers(0, 60))
        while t < T:
            y, h = _lane(H, lane, rng)
            speed = speed0 + rng.uniform(-0.1, 0.1) * sc
            m = 0.35 * h
            xs, ys = _straight(-m, W + m, speed, y)
            style = _NORMAL_STYLES[int(rng.integers(len(_NORMAL_STYLES)))]
            if t + len(xs) > 0:
                actors.append(_Actor("person", t, xs, ys, h, style))
            t += int(rng.integers(55, 96))
    return actors


def _anomaly_actor(kind, oid, H, W, rng) -> _Actor:
    sc, sh = W / 160.0, H / 120.0
    if kind in ("running", "against_flow"):
        y, h = _lane(H, int(rng.integers(len(_LANES))), rng)
        m = 0.45 * h
        style = _BRIGHT_STYLES[int(rng.integers(len(_BRIGHT_STYLES)))]
        if kind == "running":
            xs, ys = _straight(-m, W + m, rng.uniform(6.0, 7.5) * sc, y)
            return _Actor("person", 0, xs, ys, h, style, oid, kind, run=True)
        xs, ys = _straight(W + m, -m, rng.uniform(3.0, 3.4) * sc, y)
        return _Actor("person", 0, xs, ys, h, style, oid, kind)
    if kind == "vehicle":
        y, _ = _lane(H, int(rng.integers(1, len(_LANES))), rng)
        h = 0.15 * H
        m = 1.4 * h
        ends = (-m, W + m) if rng.random() < 0.5 else (W + m, -m)
        xs, ys = _straight(*ends, rng.uniform(3.8, 4.6) * sc, y)
        return _Actor("vehicle", 0, xs, ys, h, (_BRIGHT[int(rng.integers(len(_BRIGHT)))],), oid, kind)
    if kind == "thrown":
        d = 0.1 * H
        left = rng.random() < 0.5
        vx = rng.uniform(6.0, 8.0) * sc * (1 if left else -1)
        vy, g = -rng.uniform(2.0, 3.2) * sh, 0.22 * sh
        x0, y0 = (-d if left else W + d), rng.uniform(0.5, 0.75) * H
        n = int(math.ceil((W + 2 * d) / abs(vx))) + 1
        k = np.arange(n)
        c = [_BRIGHT[i] for i in rng.choice(len(_BRIGHT), 2, replace=False)]
        ys = y0 + vy * k + 0.5 * g * k * k
        spin = rng.uniform(0.4, 0.7) * (1 if left else -1)
        return _Actor("ball", 0, x0 + vx * k, ys, d, tuple(c), oid, kind, spin=spin)
    if kind in ("erratic", "loitering"):
        lane = int(rng.integers(len(_LANES)))
        y, h = _lane(H, lane, rng)
        lo, hi = _LANES[0][0] * H, _LANES[-1][0] * H
        style = _BRIGHT_STYLES[int(rng.integers(len(_BRIGHT_STYLES)))]
        m = 0.45 * h
        xs, ys = [-m], [y]
        while xs[-1] < W + m and len(xs) < 200:
            # Bursts of 3-6 frames: dashes forward, stops, steps back, lane jumps.
            vx, vy = rng.uniform(-2.0, 8.0) * sc, rng.uniform(-2.5, 2.5) * sh
            for _ in range(int(rng.integers(3, 7))):
                xs.append(xs[-1] + vx)
                ys.append(float(np.clip(ys[-1] + vy, lo, hi)))
        return _Actor("person", 0, np.array(xs), np.array(ys), h, style, oid, "erratic", run=True)
    raise ValueError(f"unknown anomaly kind {kind!r}; choose from {', '.join(ANOMALY_KINDS)}")


def _visible_span(actor: _Actor, H, W) -> tuple[int, int]:
    """First and last path index at which the actor's mask (alpha >= 0.5) is in the frame."""
    ks = []
    for k in range(len(actor.xs)):
        sprite = _render_sprite(actor.prims(actor.t0 + k), H, W)
        if sprite is not None and (sprite[3] >= 0.5).any():
            ks.append(k)
    return (ks[0], ks[-1]) if ks else (0, -1)


# --------------------------------------------------------------------------- clips


def _place(actors: list[_Actor], starts: list[int | None], T, H, W) -> list[_Actor]:
    """Shift anomaly actors in time; those without a start are spread evenly."""
    spans = [_visible_span(a, H, W) for a in actors]
    auto = [i for i, s in enumerate(starts) if s is None]
    busy = sum(spans[i][1] - spans[i][0] + 1 for i in auto)
    gap = max(T - busy, 0) / (len(auto) + 1)
    t, out = gap, []
    for actor, start, (first, last) in zip(actors, starts, spans):
        if start is None:
            start = int(round(t))
            t += (last - first + 1) + gap
        out.append(actor.shifted(start - first))
    return out


def _auto_anomalies(rng, pending: deque, T, H, W, target=0.4, limit=0.5, max_n=4) -> list[_Actor]:
    """Take kinds from ``pending`` until about ``target`` of the T frames are abnormal.

    A kind that would push the abnormal share past ``limit`` is put back at
    the front of the queue for the next clip, so kinds still rotate.
    """
    chosen, skipped, busy = [], [], 0
    for _ in range(len(ANOMALY_KINDS)):
        if not pending or len(chosen) >= max_n or busy >= target * T:
            break
        kind = pending.popleft()
        actor = _anomaly_actor(kind, len(chosen) + 1, H, W, rng)
        first, last = _visible_span(actor, H, W)
        if chosen and busy + (last - first + 1) > limit * T:
            skipped.append(kind)
            continue
        chosen.append(actor)
        busy += last - first + 1
    pending.extendleft(reversed(skipped))
    return chosen


def _kind_queue(first: int, rounds: int = 4) -> deque:
    return deque(ANOMALY_KINDS[(first + i) % len(ANOMALY_KINDS)] for i in range(rounds * len(ANOMALY_KINDS)))


def _render_clip(seed, num_frames, size, anomalies, scene=0, noise=1.0, pending=None) -> LabelledClip:
    T, (H, W) = int(num_frames), (int(size[0]), int(size[1]))
    if T < 1 or H < 16 or W < 16:
        raise ValueError(f"need num_frames >= 1 and size >= 16x16, got {T} frames of {H}x{W}")
    rng = np.random.default_rng(seed)
    bg = _background(H, W, int(scene))
    actors = _normal_walkers(T, H, W, rng)
    if isinstance(anomalies, str):
        if anomalies != "auto":
            raise ValueError(f"anomalies must be a sequence, an int or 'auto', got {anomalies!r}")
        if pending is None:
            pending = _kind_queue(int(rng.integers(len(ANOMALY_KINDS))))
        found = _auto_anomalies(rng, pending, T, H, W)
        actors += _place(found, [None] * len(found), T, H, W)
    else:
        if isinstance(anomalies, (int, np.integer)):
            order = rng.permutation(len(ANOMALY_KINDS))
            anomalies = [ANOMALY_KINDS[order[i % len(order)]] for i in range(int(anomalies))]
        spec = [(a, None) if isinstance(a, str) else (a[0], int(a[1])) for a in anomalies]
        found = [_anomaly_actor(kind, i + 1, H, W, rng) for i, (kind, _) in enumerate(spec)]
        actors += _place(found, [s for _, s in spec], T, H, W)
    frames = np.empty((T, H, W, 3), np.uint8)
    ids = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        img = bg.copy()
        for actor in sorted((a for a in actors if a.alive(t)), key=lambda a: a.depth(t)):
            sprite = _render_sprite(actor.prims(t), H, W)
            if sprite is None:
                continue
            y0, x0, col, alpha = sprite
            h, w = alpha.shape
            region = img[y0 : y0 + h, x0 : x0 + w]
            region *= 1 - alpha[..., None]
            region += col
            # Painter's order: whoever is drawn last over a pixel owns it (occlusion).
            ids[t, y0 : y0 + h, x0 : x0 + w][alpha >= 0.5] = actor.oid
        if noise > 0:
            img += rng.normal(0.0, noise, img.shape).astype(np.float32)
        frames[t] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    events = []
    for a in actors:
        if a.oid:
            vis = np.nonzero((ids == a.oid).reshape(T, -1).any(axis=1))[0]
            if len(vis):
                events.append({"kind": a.tag, "id": a.oid, "start": int(vis[0]), "end": int(vis[-1])})
    return LabelledClip(frames, ids, events)


def make_clip(
    seed=0,
    num_frames: int = 180,
    size: tuple[int, int] = DEFAULT_SIZE,
    anomalies: Sequence | int | str = (),
    *,
    scene: int = 0,
    noise: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one clip of the synthetic scene in memory.

    Parameters
    ----------
    seed : int or sequence of int
        Seeds ``np.random.default_rng``: walkers, anomaly paths, sensor noise.
    num_frames : int
        T.
    size : (H, W)
        Frame size; speeds and sizes scale with it.
    anomalies : sequence, int or "auto"
        Kinds from :data:`ANOMALY_KINDS` (spread evenly in time), or
        ``(kind, start_frame)`` pairs, or a number of kinds to draw, or
        ``"auto"`` (kinds until 35-50 % of frames are abnormal). ``()``
        gives a normal clip.
    scene : int
        Scene seed (background); keep it fixed across clips of one camera.
    noise : float
        Standard deviation of Gaussian sensor noise, in grey levels.

    Returns
    -------
    frames : (T, H, W, 3) ndarray of uint8
    labels : (T,) ndarray of uint8
        1 where an anomaly is visible.
    masks : (T, H, W) ndarray of bool
        Visible pixels of anomalous actors (after occlusion).
    """
    clip = _render_clip(seed, num_frames, size, anomalies, scene, noise)
    return clip.frames, clip.labels, clip.ids > 0


# --------------------------------------------------------------------------- datasets


def make_dataset(
    root: str | os.PathLike,
    layout: str = "avenue",
    seed: int = 0,
    *,
    num_train: int = 4,
    num_test: int = 4,
    num_frames: int = 180,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: float = 25.0,
    noise: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in a benchmark's on-disk layout.

    One static scene (seeded by ``seed``); training videos show only normal
    walkers; each test video adds anomalies chosen so 35-50 % of its frames
    are abnormal, the kinds cycling so every kind appears. Pixel masks and
    tracks are written where the layout has them (UBnormal also gets one
    validation video). The tree is built under a temporary name and renamed,
    and a hidden marker records the parameters: calling again with the same
    arguments returns at once.

    Parameters
    ----------
    root : str or PathLike
        Destination folder; must be absent, empty, or an earlier output of
        this function (rewritten only with ``overwrite=True`` or when the
        parameters changed).
    layout : {"avenue", "shanghaitech", "ped2", "ped1", "ubnormal", "folder"}
        UCSD layouts are written in grayscale, as the originals.
    seed : int
        Scene and content seed; the same seed writes the same dataset.
    num_train, num_test : int
        Number of training (normal) and test videos.
    num_frames : int
        Frames per video.
    size : (H, W)
        Frame size.
    fps : float
        Frame rate of the written videos.
    noise : float
        Sensor noise standard deviation, grey levels.
    overwrite : bool
        Rewrite an earlier synthetic dataset even with the same parameters.

    Returns
    -------
    root : Path
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    root = Path(root)
    params = {
        "layout": layout, "seed": int(seed), "num_train": int(num_train), "num_test": int(num_test),
        "num_frames": int(num_frames), "size": [int(size[0]), int(size[1])], "fps": float(fps),
        "noise": float(noise), "version": 1,
    }
    if not overwrite and up_to_date(root, params, _MARKER, "make_dataset"):
        return root
    counts = {"train": num_train, "test": num_test, "validation": 1 if layout == "ubnormal" else 0}
    pending = _kind_queue(int(seed) % len(ANOMALY_KINDS), rounds=2 + num_test)  # kinds rotate over videos
    clips = {}
    for code, (split, n) in enumerate(counts.items()):
        anomalies = () if split == "train" else "auto"
        clips[split] = [
            _render_clip([int(seed), code, i], num_frames, size, anomalies, seed, noise, pending)
            for i in range(n)
        ]
    write_dataset(root, layout, clips, fps, params, _MARKER, "make_dataset")
    return root
