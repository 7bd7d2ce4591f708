"""Development sets from real fixed-camera footage, with anomalies made from the footage itself.

The synthetic scene (:mod:`sdmae.data.devsets.synthetic`) draws its anomalies in
colours training never shows, so it cannot tell a detector from a colour
classifier. This module cuts one real clip into normal training videos and
test videos whose anomalies look like the scene, because they are the scene:

``running``   a person cut out of the test footage (their own walk cycle,
              played at double rate) crossing the scene at 4-5x walking pace
``cycling``   a person cut out of one frame gliding across at 5-7x walking
              pace, as on a bicycle or skateboard
``thrown``    a dark object (a torso cut out of the footage) thrown across the
              scene on a spinning parabola until it leaves the frame
``speedup``   everybody moves at 3x speed for a while (every third frame)

and, for a separate small-object set (``kinds=("ball",)``), not in the rotation:

``ball``      a ball, 12-20 % of a person's height (smaller than one token at
              the usual model sizes), thrown across the scene at 6-9x walking
              pace on a parabola

People are found by background subtraction (a per-pixel median background)
and followed from frame to frame by the overlap of their boxes; walking speed
and sizes are measured on the footage, so the same code works on any clip of
a fixed camera with pedestrians. Test videos hold one or two anomalies each,
at their start, middle or end; about a third of the test frames are abnormal.

Training and test videos come from disjoint parts of the clip (split 0 trains
on the first half and tests on the second, split 1 the reverse, with a gap
between them), and sprites are cut from the test part only, so no training
frame appears in a test video.

    >>> from sdmae.data.devsets.footage import make_footage_dataset  # doctest: +SKIP
    >>> make_footage_dataset("vtest.avi", "dev/split0", split=0)  # Avenue layout
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from sdmae.data.devsets.writing import LabelledClip, up_to_date, write_dataset
from sdmae.data.layouts import LAYOUTS
from sdmae.data.video import read_video

__all__ = ["EVENT_KINDS", "FOOTAGE_KINDS", "SCENES", "Scene", "event_plan", "find_footage", "make_footage_dataset", "make_footage_clips"]

FOOTAGE_KINDS = ("running", "cycling", "thrown", "speedup")
POSITIONS = ("start", "middle", "end")
_MARKER = ".sdmae-footage.json"


@dataclass(frozen=True)
class Scene:
    """A real fixed-camera clip that Debian ships, and how to cut dev sets from it."""

    description: str
    env: str  # environment variable that may name the clip
    search_paths: tuple[str, ...]  # where the clip lies once unpacked
    how_to_get: str  # shell commands that fetch and unpack it
    dataset: dict  # make_footage_dataset arguments for this clip


SCENES = {
    "campus": Scene(
        "pedestrians on a campus path, 768x576 at 10 fps, 795 frames (opencv-doc's vtest.avi)",
        "SDMAE_FOOTAGE",
        ("/usr/share/doc/opencv-doc/examples/data/vtest.avi", "~/.cache/sdmae/vtest.avi"),
        "apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb x\n"
        "  (the clip: x/usr/share/doc/opencv-doc/examples/data/vtest.avi)",
        dict(num_test=4, width=384),
    ),
    # A 1902 film of skaters on a frozen lake, from a tripod: grain, flicker, a crowd
    # that background subtraction cannot split into people (hence crowd=True), and
    # every frame twice (15 fps film at 29.97 fps, hence frame_step=2: 364 frames).
    "skaters": Scene(
        "skaters on a frozen lake, filmed in 1902, 320x240, 364 distinct frames at 15 fps (tweepy's assets/video.mp4)",
        "SDMAE_FOOTAGE_SKATERS",
        ("~/.cache/sdmae/skaters.mp4",),
        "a deb-src line for the machine's Debian archive, apt-get update, then\n"
        "  apt-get source --download-only tweepy && tar xzf tweepy_*.orig.tar.gz\n"
        "  (the clip: tweepy-*/assets/video.mp4; set SDMAE_FOOTAGE_SKATERS or copy it to ~/.cache/sdmae/skaters.mp4)",
        dict(num_test=2, width=384, frame_step=2, crowd=True),
    ),
}


def find_footage(scene: str = "campus") -> Path | None:
    """The clip of ``scene`` (a key of :data:`SCENES`): the file its environment
    variable names, else the first of its search paths that exists, else None."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; choose one of {', '.join(SCENES)}")
    env = os.environ.get(SCENES[scene].env)
    for p in ([env] if env else []) + list(SCENES[scene].search_paths):
        path = Path(p).expanduser()
        if path.is_file():
            return path
    return None


# --------------------------------------------------------------------------- people in the footage


@dataclass
class _Sprite:
    """A cut-out: colour (h, w, 3) float32 and soft alpha (h, w) float32 in [0, 1]."""

    rgb: np.ndarray
    alpha: np.ndarray

    def flipped(self) -> _Sprite:
        return _Sprite(self.rgb[:, ::-1], self.alpha[:, ::-1])


@dataclass
class _Track:
    """One person followed through consecutive frames."""

    times: list  # frame indices
    boxes: list  # (y0, x0, y1, x1) per frame
    sprites: list  # _Sprite per frame

    @property
    def foot(self) -> np.ndarray:
        """(n, 2) bottom-centre (y, x) per frame."""
        return np.array([((b[2]), (b[1] + b[3]) / 2) for b in self.boxes], np.float64)

    @property
    def height(self) -> float:
        return float(np.median([b[2] - b[0] for b in self.boxes]))

    @property
    def pace(self) -> float:
        """Body heights per frame, from the net displacement of the feet (box jitter cancels)."""
        f = self.foot
        return float(np.hypot(*(f[-1] - f[0]))) / max(len(f) - 1, 1) / self.height

    @property
    def direction(self) -> int:
        """+1 walking right, -1 walking left (the way the sprites face)."""
        return 1 if self.foot[-1, 1] >= self.foot[0, 1] else -1


class _People:
    """Background subtraction and blob tracking on a fixed-camera clip.

    frames : (T, H, W, 3) uint8, the part of the clip to cut people from
    """

    def __init__(self, frames: np.ndarray, background: np.ndarray):
        self.frames = frames
        self.background = background.astype(np.float32)  # (H, W, 3)
        H, W = frames.shape[1:3]
        self.min_area, self.max_area = 0.0012 * H * W, 0.03 * H * W

    def foreground(self, t: int) -> np.ndarray:
        """(H, W) bool: pixels that differ from the background (moving things)."""
        diff = np.abs(self.frames[t].astype(np.float32) - self.background).max(axis=2)
        fg = ndi.binary_opening(diff > 30, iterations=1)
        return ndi.binary_fill_holes(ndi.binary_closing(fg, iterations=2))

    def blobs(self, t: int) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        """Person-shaped foreground blobs of frame t: (box, mask cropped to the box)."""
        H, W = self.frames.shape[1:3]
        lab, _ = ndi.label(self.foreground(t))
        out = []
        for i, sl in enumerate(ndi.find_objects(lab)):
            if sl is None:
                continue
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            mask = lab[sl] == i + 1
            area, h, w = mask.sum(), y1 - y0, x1 - x0
            touches = y0 == 0 or x0 == 0 or y1 == H or x1 == W
            if self.min_area <= area <= self.max_area and 1.6 <= h / w <= 4.5 and not touches:
                out.append(((y0, x0, y1, x1), mask))
        return out

    def sprite(self, t: int, box, mask: np.ndarray) -> _Sprite:
        y0, x0, y1, x1 = box
        alpha = ndi.gaussian_filter(mask.astype(np.float32), 0.7)  # soft edge, no hard seam
        return _Sprite(self.frames[t, y0:y1, x0:x1].astype(np.float32), alpha)

    def tracks(self, min_len: int = 8, max_len: int = 40) -> list[_Track]:
        """People followed while they stay a single, person-shaped blob."""
        per_frame = [self.blobs(t) for t in range(len(self.frames))]
        used: set[tuple[int, int]] = set()
        tracks = []
        for t0, blobs in enumerate(per_frame):
            for b0, (box, mask) in enumerate(blobs):
                if (t0, b0) in used:
                    continue
                times, boxes, sprites = [t0], [box], [self.sprite(t0, box, mask)]
                used.add((t0, b0))
                t = t0
                while t + 1 < len(per_frame) and len(times) < max_len:
                    best, best_iou = None, 0.3
                    for j, (nbox, nmask) in enumerate(per_frame[t + 1]):
                        iou = _iou(boxes[-1], nbox)
                        if iou > best_iou and (t + 1, j) not in used:
                            best, best_iou = j, iou
                    if best is None:
                        break
                    t += 1
                    nbox, nmask = per_frame[t][best]
                    used.add((t, best))
                    times.append(t)
                    boxes.append(nbox)
                    sprites.append(self.sprite(t, nbox, nmask))
                if len(times) >= min_len:
                    tracks.append(_Track(times, boxes, sprites))
        return tracks


class _Patches:
    """People in a crowd, where background subtraction merges them into one blob:
    windows of a person's size around the strongest motion, followed from frame to
    frame by block matching, with a soft elliptical cut-out.

    frames : (T, H, W, 3) uint8, the part of the clip to cut from
    height : person height in pixels (the window is ``height`` x ``0.45 * height``)
    """

    SEARCH = 6  # px a window may move between frames

    def __init__(self, frames: np.ndarray, height: int):
        self.frames = frames
        self.h, self.w = int(height), max(4, int(0.45 * height))
        yy, xx = np.mgrid[-1:1:self.h * 1j, -1:1:self.w * 1j]
        self.alpha = ndi.gaussian_filter((yy ** 2 + xx ** 2 <= 1).astype(np.float32), 1.0)

    def _follow(self, t: int, y: int, x: int) -> tuple[int, int]:
        """Where the window at (y, x) in frame t went in frame t + 1 (least squared difference)."""
        f0 = self.frames[t].astype(np.float32)
        f1 = self.frames[t + 1].astype(np.float32)
        H, W = f0.shape[:2]
        ref = f0[y: y + self.h, x: x + self.w]
        best, where = np.inf, (y, x)
        for dy in range(-self.SEARCH, self.SEARCH + 1):
            for dx in range(-self.SEARCH, self.SEARCH + 1):
                ny, nx = y + dy, x + dx
                if 0 <= ny <= H - self.h and 0 <= nx <= W - self.w:
                    d = float(((f1[ny: ny + self.h, nx: nx + self.w] - ref) ** 2).mean())
                    if d < best:
                        best, where = d, (ny, nx)
        return where

    def tracks(self, rng, count: int = 12, length: int = 16) -> list[_Track]:
        """``count`` windows, each placed on the strongest motion of a random frame
        (in the lower two thirds, where the people are) and followed ``length`` frames."""
        T, H, W = self.frames.shape[:3]
        if T < length + 2 or H < self.h or W < self.w:
            return []
        out = []
        for t0 in rng.choice(np.arange(1, T - length - 1), size=min(count, T - length - 2), replace=False):
            motion = np.abs(self.frames[t0 + 1].astype(np.float32) - self.frames[t0 - 1]).mean(axis=2)
            motion[: H // 3] = 0
            energy = ndi.uniform_filter(motion, (self.h, self.w))
            cy, cx = np.unravel_index(np.argmax(energy), energy.shape)
            y = int(np.clip(cy - self.h // 2, 0, H - self.h))
            x = int(np.clip(cx - self.w // 2, 0, W - self.w))
            times, boxes, sprites = [], [], []
            for t in range(int(t0), int(t0) + length):
                times.append(t)
                boxes.append((y, x, y + self.h, x + self.w))
                sprites.append(_Sprite(self.frames[t, y: y + self.h, x: x + self.w].astype(np.float32), self.alpha))
                y, x = self._follow(t, y, x)
            out.append(_Track(times, boxes, sprites))
        return out


def _iou(a, b) -> float:
    iy = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ix = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iy * ix
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


# --------------------------------------------------------------------------- anomalies


@dataclass
class _Placement:
    """Where a sprite is drawn in one output frame: top-left corner (y, x)."""

    sprite: _Sprite
    y: float
    x: float


def _crossing(H: int, W: int, foot_y: float, sprite_w: int, speed: float, rng) -> tuple[np.ndarray, int]:
    """Feet x positions of something crossing the frame at ``speed`` px/frame,
    entering on a random side -> (xs (n,), direction +1/-1)."""
    direction = 1 if rng.random() < 0.5 else -1
    n = int(np.ceil((W + sprite_w) / speed)) + 1
    start = -sprite_w / 2 if direction > 0 else W + sprite_w / 2
    return start + direction * speed * np.arange(n), direction


def _running(track: _Track, walk: float, H: int, W: int, rng) -> list[list[_Placement]]:
    """The person's own walk cycle at double rate, feet moving at 4-5x walking pace."""
    speed = rng.uniform(4.0, 5.0) * walk * track.height
    foot_y = float(np.median(track.foot[:, 0]))
    width = max(s.rgb.shape[1] for s in track.sprites)
    xs, direction = _crossing(H, W, foot_y, width, speed, rng)
    cycle = track.sprites[::2] if len(track.sprites) >= 8 else track.sprites
    out = []
    for k, x in enumerate(xs):
        s = cycle[k % len(cycle)]
        if direction != track.direction:
            s = s.flipped()
        h, w = s.alpha.shape
        out.append([_Placement(s, foot_y - h, x - w / 2)])
    return out


def _cycling(track: _Track, walk: float, H: int, W: int, rng) -> list[list[_Placement]]:
    """One frame of the person, rigid, gliding across at 5-7x walking pace."""
    speed = rng.uniform(5.0, 7.0) * walk * track.height
    s = track.sprites[len(track.sprites) // 2]
    foot_y = float(track.foot[len(track.sprites) // 2, 0])
    xs, direction = _crossing(H, W, foot_y, s.rgb.shape[1], speed, rng)
    if direction != track.direction:
        s = s.flipped()
    h, w = s.alpha.shape
    return [[_Placement(s, foot_y - h, x - w / 2)] for x in xs]


def _thrown(track: _Track, walk: float, H: int, W: int, rng) -> list[list[_Placement]]:
    """A torso-sized dark cut-out thrown into the frame from one side at about head height,
    spinning along a parabola until it leaves the frame."""
    s = track.sprites[len(track.sprites) // 2]
    h = s.alpha.shape[0]
    torso = _Sprite(s.rgb[int(0.25 * h): int(0.6 * h)], s.alpha[int(0.25 * h): int(0.6 * h)])
    pace = walk * track.height  # px per frame at this person's depth
    direction = rng.choice([-1, 1])
    x = -torso.rgb.shape[1] if direction > 0 else W + torso.rgb.shape[1]
    y = float(np.median(track.foot[:, 0])) - track.height * rng.uniform(0.8, 1.2)
    vx, vy, g = direction * rng.uniform(5.0, 7.0) * pace, -rng.uniform(0.5, 1.5) * pace, 0.25 * pace
    spin = rng.uniform(15.0, 40.0) * rng.choice([-1, 1])  # degrees per frame
    out = []
    for k in range(400):
        rot = _rotate(torso, spin * k)
        rh, rw = rot.alpha.shape
        inside = -rw < x < W + rw and y < H + rh
        if not inside and k > 0:
            break
        out.append([_Placement(rot, y - rh / 2, x - rw / 2)])
        x, y, vy = x + vx, y + vy, vy + g
    return out


def _ball(track: _Track, walk: float, H: int, W: int, rng) -> list[list[_Placement]]:
    """A ball, 12-20 % of this person's height across, dark or light and lit from above,
    thrown from one side at about head height along a parabola until it leaves the frame."""
    pace = walk * track.height
    d = max(3, int(round(rng.uniform(0.12, 0.2) * track.height)))
    yy, xx = np.mgrid[:d, :d] - (d - 1) / 2
    alpha = np.clip(d / 2 - np.hypot(yy, xx) + 0.5, 0.0, 1.0).astype(np.float32)
    shade = float(rng.choice([45.0, 215.0]))
    rgb = np.repeat((shade * (1.0 - 0.3 * (yy / d)))[..., None], 3, axis=2).astype(np.float32)
    ball = _Sprite(rgb, alpha)
    direction = rng.choice([-1, 1])
    x = -d if direction > 0 else W + d
    y = float(np.median(track.foot[:, 0])) - track.height * rng.uniform(0.8, 1.2)
    vx, vy, g = direction * rng.uniform(6.0, 9.0) * pace, -rng.uniform(0.5, 1.5) * pace, 0.25 * pace
    out = []
    for k in range(400):
        if not (-d < x < W + d and y < H + d) and k > 0:
            break
        out.append([_Placement(ball, y - d / 2, x - d / 2)])
        x, y, vy = x + vx, y + vy, vy + g
    return out


def _rotate(s: _Sprite, degrees: float) -> _Sprite:
    rgb = ndi.rotate(s.rgb, degrees, axes=(1, 0), reshape=True, order=1)
    alpha = np.clip(ndi.rotate(s.alpha, degrees, axes=(1, 0), reshape=True, order=1), 0.0, 1.0)
    return _Sprite(rgb, alpha)


def _paste(frame: np.ndarray, ids: np.ndarray, p: _Placement, oid: int) -> None:
    """Alpha-composite a placed sprite into frame (H, W, 3) float32 in place; mark ids."""
    H, W = ids.shape
    top, left = int(round(p.y)), int(round(p.x))
    h, w = p.sprite.alpha.shape
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + h, H), min(left + w, W)
    if y1 <= y0 or x1 <= x0:
        return
    a = p.sprite.alpha[y0 - top: y1 - top, x0 - left: x1 - left]
    c = p.sprite.rgb[y0 - top: y1 - top, x0 - left: x1 - left]
    region = frame[y0:y1, x0:x1]
    region += a[..., None] * (c - region)
    ids[y0:y1, x0:x1][a >= 0.5] = oid


_SPRITE_KINDS = {"running": _running, "cycling": _cycling, "thrown": _thrown, "ball": _ball}
EVENT_KINDS = FOOTAGE_KINDS + ("ball",)  # what ``kinds`` may name
SPEEDUP = 3  # the speed-up plays every third frame


def _start_frame(position: str, length: int, T: int) -> int:
    """First output frame of an event ``length`` frames long: starting before the video
    (so it is under way at frame 0), centred, or running past the end."""
    if position == "start":
        return -(length // 3)
    if position == "end":
        return T - length + length // 3
    return (T - length) // 2


def _render_test_video(frames: np.ndarray, source: range, people: _People, tracks: list[_Track],
                       walk: float, events: list[tuple[str, str]], rng, max_event: int | None = None) -> LabelledClip:
    """One test video over the frames ``source`` (indices into ``frames``) with ``events``;
    a path longer than ``max_event`` frames keeps its middle part (the object crosses
    the middle of the frame)."""
    H, W = frames.shape[1:3]
    index = list(source)
    plans = []
    for oid, (kind, position) in enumerate(events, start=1):
        if kind == "speedup":
            n_out = max(1, min(int(rng.integers(12, 17)), len(index) // (2 * SPEEDUP)))
            start = min(max(_start_frame(position, n_out, len(index) - (SPEEDUP - 1) * n_out), 0),
                        len(index) - SPEEDUP * n_out)
            index = index[:start] + index[start: start + SPEEDUP * n_out: SPEEDUP] + index[start + SPEEDUP * n_out:]
            plans.append((oid, kind, start, n_out, None))
        else:
            track = tracks[int(rng.integers(len(tracks)))]
            path = _SPRITE_KINDS[kind](track, walk, H, W, rng)
            if max_event and len(path) > max_event:
                cut = (len(path) - max_event) // 2
                path = path[cut: cut + max_event]
            plans.append((oid, kind, position, len(path), path))
    T = len(index)
    out = np.empty((T, H, W, 3), np.float32)
    ids = np.zeros((T, H, W), np.uint8)
    for t, k in enumerate(index):
        out[t] = frames[k]
    for oid, kind, where, length, path in plans:
        if path is None:  # speed-up: the moving people are the anomaly
            for t in range(where, where + length):
                ids[t][people.foreground(index[t]) & (ids[t] == 0)] = oid
            continue
        start = _start_frame(where, length, T)
        for k, placements in enumerate(path):
            t = start + k
            if 0 <= t < T:
                for p in placements:
                    _paste(out[t], ids[t], p, oid)
    events_out = []
    for oid, kind, *_ in plans:
        vis = np.nonzero((ids == oid).reshape(T, -1).any(axis=1))[0]
        if len(vis):
            events_out.append({"kind": kind, "id": oid, "start": int(vis[0]), "end": int(vis[-1])})
    return LabelledClip(np.clip(out + 0.5, 0, 255).astype(np.uint8), ids, events_out)


def event_plan(num_test: int, seed: int, split: int,
               kinds: tuple[str, ...] = FOOTAGE_KINDS) -> list[list[tuple[str, str]]]:
    """Two, one, two, one ... events per test video (about a third of the frames
    abnormal). ``kinds`` rotate, in an order drawn from (seed, split), and so do the
    places (start and end, middle, start and middle, end): anomalies sit at the
    start, the middle and the end of videos, where smoothing treats frames differently."""
    unknown = [k for k in kinds if k not in EVENT_KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must name some of {EVENT_KINDS}, got {kinds!r}")
    order = np.random.default_rng([seed, split, 0xE7]).permutation(len(kinds))
    kinds = [kinds[i] for i in order]
    places = (("start", "end"), ("middle",), ("start", "middle"), ("end",))
    plan, k = [], 0
    for v in range(num_test):
        plan.append([(kinds[(k + e) % len(kinds)], where) for e, where in enumerate(places[v % len(places)])])
        k += len(places[v % len(places)])
    return plan


# --------------------------------------------------------------------------- datasets


def _shrink(frames: np.ndarray, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> width ``width`` (box filter, integer factors only)."""
    k = frames.shape[2] // width if width else 1
    if k <= 1:
        return frames
    T, H, W = frames.shape[:3]
    f = frames[:, : H // k * k, : W // k * k].astype(np.float32)
    f = f.reshape(T, H // k, k, W // k, k, 3).mean(axis=(2, 4))
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def make_footage_clips(frames: np.ndarray, *, split: int = 0, seed: int = 0, num_train: int = 2,
                       num_test: int = 4, gap: int = 10, crowd: bool = False,
                       kinds: tuple[str, ...] = FOOTAGE_KINDS) -> dict[str, list[LabelledClip]]:
    """Cut a fixed-camera clip into normal training videos and test videos with anomalies.

    Parameters
    ----------
    frames : (T, H, W, 3) ndarray of uint8
        The whole clip (T >= 100).
    split : {0, 1}
        0: train on the first half, test on the second; 1: the reverse.
    seed : int
        Which people, paths, speeds and kind order.
    num_train, num_test : int
        Videos cut from the training and the test half.
    gap : int
        Frames left out between the halves, so no test frame nearly repeats a
        training frame.
    crowd : bool
        The people stand too close for background subtraction to single them
        out (a crowd, a flickering film): cut person-sized windows around the
        strongest motion instead (:class:`_Patches`), a quarter of the frame high;
        an event lasts at most a third of its video (a short clip of slow skaters
        would otherwise be abnormal throughout).
    kinds : the event kinds that rotate through the test videos (``("ball",)``: the
        small-object set)

    Returns
    -------
    {"train": [...], "test": [...]} of :class:`~sdmae.data.devsets.writing.LabelledClip`
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    T = len(frames)
    if T < 100:
        raise ValueError(f"the clip has {T} frames; a dev set needs at least 100")
    if split not in (0, 1):
        raise ValueError(f"split must be 0 or 1, got {split!r}")
    half, g = T // 2, gap // 2
    first, second = range(0, half - g), range(half + g, T)
    train_part, test_part = (first, second) if split == 0 else (second, first)
    rng = np.random.default_rng([seed, split])
    background = np.median(frames[:: max(1, T // 160)], axis=0)  # people move, the scene stays
    people = _People(frames[test_part.start: test_part.stop], background)
    tracks = (_Patches(people.frames, frames.shape[1] // 4).tracks(np.random.default_rng([seed, split, 0xC0]))
              if crowd else people.tracks())
    if not tracks:
        raise ValueError("no person could be followed through the test part of the clip: the footage needs "
                         "pedestrians seen by a fixed camera")
    walk = float(np.median([t.pace for t in tracks]))  # walking pace, body heights per frame
    tall = float(np.median([t.height for t in tracks]))
    tracks = [t for t in tracks if t.height >= tall] or tracks  # nearer people: anomalies worth seeing
    clips: dict[str, list[LabelledClip]] = {"train": [], "test": [], "validation": []}
    for part in np.array_split(np.arange(train_part.start, train_part.stop), num_train):
        f = frames[part]
        clips["train"].append(LabelledClip(f, np.zeros(f.shape[:3], np.uint8), []))
    for part, events in zip(np.array_split(np.arange(test_part.start, test_part.stop), num_test),
                            event_plan(num_test, seed, split, kinds)):
        source = range(int(part[0]), int(part[-1]) + 1)
        local = range(source.start - test_part.start, source.stop - test_part.start)
        clips["test"].append(_render_test_video(frames[test_part.start: test_part.stop], local, people, tracks,
                                                walk, events, rng, len(local) // 3 if crowd else None))
    return clips


def make_footage_dataset(footage: str | os.PathLike | np.ndarray, root: str | os.PathLike, *, split: int = 0,
                         seed: int = 0, layout: str = "avenue", width: int = 384, num_train: int = 2,
                         num_test: int = 4, fps: float | None = None, frame_step: int = 1, crowd: bool = False,
                         kinds: tuple[str, ...] = FOOTAGE_KINDS, overwrite: bool = False) -> Path:
    """Write a dev set cut from real footage in a benchmark's layout (see the module doc).

    Parameters
    ----------
    footage : path of a video (or frame folder), or (T, H, W, 3) uint8 frames
    root : destination; absent, empty, or an earlier output of this function
        (rewritten when the parameters change or with ``overwrite``)
    split, seed, num_train, num_test : see :func:`make_footage_clips`
    layout : any layout :func:`sdmae.data.load_dataset` reads
    width : frames are shrunk by an integer factor to about this width (0: keep)
    fps : frame rate written (default: the footage's divided by ``frame_step``, else 25)
    frame_step : keep every frame_step-th frame (2 for a film transferred at twice
        its frame rate, which repeats every frame)
    crowd, kinds : see :func:`make_footage_clips`

    Returns
    -------
    root : Path
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    source = "array" if isinstance(footage, np.ndarray) else str(Path(footage).resolve())
    if fps is None and not isinstance(footage, np.ndarray):
        from sdmae.data.video import video_info

        fps = video_info(footage).fps / frame_step
    fps = float(fps or 25.0)
    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    params = {"footage": source, "split": int(split), "seed": int(seed), "layout": layout, "width": int(width),
              "num_train": int(num_train), "num_test": int(num_test), "fps": fps, "version": 1}
    if frame_step != 1 or crowd:  # keys absent otherwise: dev sets written before stay up to date
        params.update(frame_step=int(frame_step), crowd=bool(crowd))
    if tuple(kinds) != FOOTAGE_KINDS:
        params["kinds"] = list(kinds)
    if isinstance(footage, np.ndarray):
        params["footage_shape"] = list(footage.shape)
        params["footage_sum"] = int(footage[::7, ::7, ::7].astype(np.int64).sum())
    if not overwrite and up_to_date(root, params, _MARKER, "make_footage_dataset"):
        return Path(root)
    frames = (footage if isinstance(footage, np.ndarray) else read_video(footage))[::frame_step]
    clips = make_footage_clips(_shrink(frames, width), split=split, seed=seed, num_train=num_train,
                               num_test=num_test, crowd=crowd, kinds=tuple(kinds))
    return write_dataset(root, layout, clips, fps, params, _MARKER, "make_footage_dataset")
