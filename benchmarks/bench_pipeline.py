"""End-to-end scoring throughput: video file on disk -> smoothed frame scores.

Writes a synthetic clip (``sdmae.data.make_clip``) to an MJPEG ``.avi`` at the
preset's source size, builds ``Detector(model, cfg)`` from a freshly
initialised model (no training is needed for speed), and times
``Detector.score_video`` (decode included). Then one instrumented run over the
same frames splits the time into stages:

* decode  -- pulling frames out of the video reader (``sdmae.data.iter_frames``);
  as in ``score_video`` it runs in a worker thread (``sdmae.data.prefetch``),
  overlapped with the rest, so it is reported apart from the main thread's total
* wait    -- the main thread blocked on the worker for frames (decode not hidden)
* prepare -- ``kernels.prepare`` (resize, scale, 9-channel input, motion weights)
* model   -- the forward pass (the model fused for inference, as Detector.load; ``--plain`` unfused)
* score   -- ``kernels.score`` (token errors, frame scores)
* maps    -- ``clean_map`` (erosion, dilation), with ``--maps`` only (as ``sdmae evaluate``)
* other   -- the rest: masks, glue, smoothing

The same run times the original architecture's forward alone (bench_model's
``baseline``: fp32, batch 32, one pass, random inputs) and gives the
end-to-end frames/s as a multiple of it. Then it times decoding alone (no
model), of the clip and of the same frames as MPEG-4 (yuv420p, Avenue's codec):
a bare PyAV loop against ``iter_frames``, as it runs here and with 2 colour
conversion threads (``sdmae.data.video.DECODE_THREADS``, on where cores are plenty).

Model-only throughput is the frames divided by the model stage; the headline
ratio is end-to-end over model-only frames/s within the instrumented run (its
model seconds over its total seconds; 100 % = the model is the only cost).
Uninstrumented end-to-end runs are reported too, but on a shared machine they
happen at other moments than the instrumented one, so they are not divided.

``--source streams`` is the live-camera case. First ``--streams`` cameras (the
clip, each from another start, frames already decoded) pushed as fast as they
go through ``StreamScorer.push_many`` (their frames share forward passes).
Then real-time trials: K cameras each deliver the clip, written as an MJPEG
file and decoded as each frame falls due, at ``--camera-fps`` (25), staggered
within the frame interval; K grows through ``--cameras`` until the scoring
falls behind. Each trial gives the frames/s delivered and scored, and the
latency from a frame's arrival to its score (p50, p99).

``--source memory`` times what is left without the file: the clip's uint8
frames already on the device (a CUDA tensor with ``--device cuda``), then
``Detector.score_frames`` on them -- ``prepare`` + model + ``score`` window by
window -- with synchronised timing: the "model + kernels from uint8 frames on the device"
figure.

Correctness first: the fused and the plain model must give the same raw scores
on the clip (1e-4 relative in float32; with ``--precision bf16``, or ``auto`` on
hardware with native bf16, the gap is printed instead).

Run: python benchmarks/bench_pipeline.py [--quick] [--preset avenue] [--input-size HxW] [--patch P]
     [--video-size HxW] [--frames T] [--batch N] [--repeats R] [--plain] [--maps]
     [--precision auto|fp32|bf16] [--device cpu|cuda] [--source file|memory|streams]
     [--streams K] [--cameras 1,2,4,...] [--camera-fps F] [--seconds S] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import contextlib
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from _harness import cpu_features, cpu_name, device_and_threads, device_name, synchronizer, timeit, timeit_interleaved

import sdmae.detector as detector_mod
from sdmae import kernels
from sdmae.config import FAST_SCORE, get_preset
from sdmae.data import iter_frames, make_clip, prefetch, write_video
from sdmae.detector import Detector, StreamScorer
from sdmae.hardware import resolve_precision
from sdmae.model import SDMAE, seeded_masks

SOURCE = {"avenue": (360, 640), "shanghaitech": (480, 856), "ubnormal": (720, 1280), "ped2": (240, 360),
          "tiny": (96, 144)}


class _Timers:
    def __init__(self, device: torch.device):
        self.total = {}
        self.sync = synchronizer(device)

    @contextlib.contextmanager
    def __call__(self, name: str, sync: bool = True):
        if sync:
            self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if sync:
                self.sync()
            self.total[name] = self.total.get(name, 0.0) + time.perf_counter() - start


class _TimedModel(torch.nn.Module):
    def __init__(self, model, timers):
        super().__init__()
        self.inner, self.timers = model, timers

    def forward(self, *args, **kw):
        with self.timers("model"):
            return self.inner(*args, **kw)


def _timed_frames(frames, timers, name):
    it = iter(frames)
    while True:
        with timers(name, sync=False):  # "decode" runs in the prefetch thread: no GPU sync there
            try:
                f = next(it)
            except StopIteration:
                return
        yield f


def instrumented_run(det: Detector, path: Path, device: torch.device,
                     with_maps: bool = False) -> tuple[dict, float, np.ndarray]:
    """One score_video-equivalent pass with per-stage timers -> (stage seconds, total s, raw scores)."""
    timers = _Timers(device)
    orig_model, orig_prepare, orig_score = det.model, kernels.prepare, kernels.score

    def prepare(*a, **k):
        with timers("prepare"):
            return orig_prepare(*a, **k)

    def score(*a, **k):
        with timers("score"):
            return orig_score(*a, **k)

    orig_clean = detector_mod.clean_map

    def clean(*a, **k):
        with timers("maps"):
            return orig_clean(*a, **k)

    det.model = _TimedModel(orig_model, timers)
    detector_mod.kernels.prepare, detector_mod.kernels.score = prepare, score  # same module object
    detector_mod.clean_map = clean
    try:
        timers.sync()
        start = time.perf_counter()
        decoded = prefetch(_timed_frames(iter_frames(path), timers, "decode"),
                           depth=det.batch_size + 2 * det.reach)  # as score_video does
        res = det.score_frames(_timed_frames(decoded, timers, "wait"), with_maps=with_maps)
        timers.sync()
        total = time.perf_counter() - start
    finally:
        det.model = orig_model
        kernels.prepare, kernels.score = orig_prepare, orig_score
        detector_mod.clean_map = orig_clean
    stages = dict(timers.total)
    stages["other"] = total - sum(v for k, v in stages.items() if k != "decode")  # decode overlaps
    return stages, total, res.raw


def score_from_memory(det: Detector, frames: torch.Tensor) -> np.ndarray:
    """Raw scores of a (T, H, W, 3) uint8 tensor on the detector's device, no decoding."""
    return det.score_frames(frames).raw  # its window stacks the device tensor's frames on the device


def run_memory(det: Detector, frames: np.ndarray, device: torch.device, repeats: int, args) -> None:
    on_device = torch.as_tensor(frames).to(device)
    ref = det.score_frames(frames).raw  # the offline path on the same frames
    got = score_from_memory(det, on_device)  # also the warm-up
    rel = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))
    if rel > 1e-4:
        raise SystemExit(f"scoring from memory differs from score_frames (relative {rel:.2e})")
    med, _, times = timeit(lambda: score_from_memory(det, on_device), repeats, warmup=0, sync=synchronizer(device))
    h, w = det.size
    dev_name = device_name(device)
    print(f"# sdmae kernels + model from uint8 frames in {'GPU' if device.type == 'cuda' else 'host'} memory | "
          f"{len(frames)} frames {frames.shape[1]}x{frames.shape[2]} -> model {h}x{w} p{det.patch} | batch "
          f"{det.batch_size} | {det.precision} | device {device} ({dev_name}) | threads "
          f"{torch.get_num_threads()} | median of {repeats} | {' '.join(sys.argv)}")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| s per pass (min-max) | {med:.3f} ({min(times):.3f}-{max(times):.3f}) |")
    print(f"| frames/s (prepare + model + score, synchronised) | {len(frames) / med:.1f} |")
    print(f"| max relative difference to score_frames | {rel:.1e} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(source="memory", frames=len(frames), batch=det.batch_size, times_s=times,
                           fps=len(frames) / med, precision=det.precision, device=str(device),
                           threads=torch.get_num_threads(), torch=torch.__version__), f, indent=1)


def run_streams(det: Detector, frames: np.ndarray, streams: int, repeats: int, args) -> dict:
    """``streams`` live cameras (the clip, each from another start) pushed a frame at a
    time through StreamScorer.push_many as fast as they go, frames already decoded:
    frames/s over all cameras, streaming latency included (a frame is scored once frame
    t + offset has arrived)."""
    views = [np.roll(frames, 7 * k, axis=0) for k in range(streams)]

    def run():
        scorer = StreamScorer(det)
        n = 0
        for t in range(len(frames)):
            n += len(scorer.push_many({k: views[k][t] for k in range(streams)}))
        for k in range(streams):
            n += len(scorer.close(k))
        return n

    if run() != streams * len(frames):  # also the warm-up
        raise SystemExit("StreamScorer did not score every frame of every stream")
    med, _, times = timeit(run, repeats, warmup=0)
    return dict(streams=streams, frames=len(frames), times_s=times, fps=streams * len(frames) / med)


def _looped_frames(path: Path, skip: int) -> Iterator[np.ndarray]:
    """A camera: the video file decoded frame by frame, from frame ``skip``, looped."""
    first = True
    while True:
        for i, frame in enumerate(iter_frames(path)):
            if not (first and i < skip):
                yield frame
        first = False


def camera_trial(det: Detector, path: Path, cameras: int, seconds: float, fps: float = 25.0) -> dict:
    """``cameras`` cameras deliver the video at ``fps`` each, in real time, staggered
    within the frame interval; a delivery thread decodes each frame as it falls due
    (decoding is part of the load), and the main thread scores what arrives within a
    frame interval through StreamScorer.push_many. Latency: a frame's arrival to its score (it includes
    waiting for the ``offset`` later frames the score needs); processing latency: the
    arrival of the last frame a score needs to the score."""
    feeds = [_looped_frames(path, 7 * k) for k in range(cameras)]
    arrivals: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    start = time.perf_counter() + 0.05
    due = {}  # (camera, frame index) -> arrival time

    def deliver():
        n = 0
        while not stop.is_set():
            for k in range(cameras):
                when = start + (n + k / cameras) / fps
                if when - start >= seconds:
                    arrivals.put(None)
                    return
                delay = when - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                arrivals.put((k, n, when, next(feeds[k])))
            n += 1

    thread = threading.Thread(target=deliver, daemon=True)
    thread.start()
    scorer = StreamScorer(det)
    reach = det.reach  # frame t is scored once frame t + reach has arrived
    latencies, processing, scored, delivered, lag, ended = [], [], 0, 0, 0.0, False
    try:
        while not ended:
            # what has arrived, and what arrives within one frame interval of the first
            # (a frame of each camera at most): forward passes of many cameras' frames run
            # several times faster than one frame each, for at most 1/fps more latency
            items = [arrivals.get()]
            deadline = time.perf_counter() + 1.0 / fps
            while items[-1] is not None and len(items) < cameras:
                try:
                    items.append(arrivals.get(timeout=max(0.0, deadline - time.perf_counter())))
                except queue.Empty:
                    break
            if items[-1] is None:
                ended, items = True, items[:-1]
            rounds: list[dict] = []  # push_many takes one frame per camera: a camera's backlog spans rounds
            for k, n, when, frame in items:
                due[k, n] = when
                depth = sum(1 for r in rounds if k in r)
                if depth == len(rounds):
                    rounds.append({})
                rounds[depth][k] = frame
            delivered += len(items)
            for r in rounds:
                for k, result in scorer.push_many(r):
                    now = time.perf_counter()
                    latencies.append(now - due.pop((k, result.index)))
                    processing.append(now - due.get((k, result.index + reach), now))
                    scored += 1
            if items:
                lag = time.perf_counter() - items[-1][2]
    finally:
        stop.set()
        thread.join(timeout=5)
    wall = time.perf_counter() - start
    p = np.percentile
    return dict(cameras=cameras, seconds=seconds, delivered=delivered, scored=scored,
                delivered_fps=delivered / wall, scored_fps=scored / wall,
                latency_p50_ms=1e3 * float(p(latencies, 50)), latency_p99_ms=1e3 * float(p(latencies, 99)),
                processing_p50_ms=1e3 * float(p(processing, 50)),
                processing_p99_ms=1e3 * float(p(processing, 99)), final_lag_ms=1e3 * lag,
                # real time: the backlog at the end is under half a second, and every frame that
                # could be scored was (the last `offset` frames of each camera wait for their successors)
                real_time=lag < 0.5 and scored >= delivered - cameras * (reach + 1))


def run_cameras(det: Detector, path: Path, counts: list[int], seconds: float) -> list[dict]:
    """Camera trials at increasing counts, until one falls behind."""
    camera_trial(det, path, 1, min(seconds, 1.0))  # warm-up: decoder, threads, first forward passes
    trials = []
    for k in counts:
        trials.append(camera_trial(det, path, k, seconds))
        if not trials[-1]["real_time"]:
            break
    return trials


def print_streams(det: Detector, frames: np.ndarray, throughput: dict, trials: list[dict], args) -> None:
    h, w = det.size
    print(f"# sdmae live cameras | video {frames.shape[1]}x{frames.shape[2]} MJPEG -> model {h}x{w} p{det.patch} | "
          f"forward batch up to {det.batch_size} | {det.precision} | device {det.device} | threads "
          f"{torch.get_num_threads()} | {cpu_name()} | {' '.join(sys.argv)}")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| {throughput['streams']} streams, frames already decoded, as fast as they go: frames/s "
          f"(median of {len(throughput['times_s'])}) | {throughput['fps']:.1f} |")
    ok = [t for t in trials if t["real_time"]]
    print(f"| cameras at {args.camera_fps:g} fps scored in real time, decoding included (most tried) | "
          f"{ok[-1]['cameras'] if ok else 0} |")
    print()
    print("| cameras | delivered frames/s | scored frames/s | latency p50 ms | latency p99 ms | "
          "processing p50 ms | processing p99 ms | lag at end ms | real time |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for t in trials:
        print(f"| {t['cameras']} | {t['delivered_fps']:.1f} | {t['scored_fps']:.1f} | {t['latency_p50_ms']:.0f} | "
              f"{t['latency_p99_ms']:.0f} | {t['processing_p50_ms']:.0f} | {t['processing_p99_ms']:.0f} | "
              f"{t['final_lag_ms']:.0f} | {'yes' if t['real_time'] else 'no'} |")
    print(f"\nLatency: a frame's arrival to its score, including the wait for the {det.reach} later "
          f"frames its score needs ({1e3 * det.reach / args.camera_fps:.0f} ms at "
          f"{args.camera_fps:g} fps); processing: the arrival of the last of those frames to the score.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(source="streams", throughput=throughput, trials=trials, precision=det.precision,
                           device=str(det.device), threads=torch.get_num_threads(), torch=torch.__version__),
                      f, indent=1)


def decode_rates(clips: dict[str, Path], frames_n: int, repeats: int) -> dict[str, dict[str, float]]:
    """Decoding alone (no model), frames/s, round-robin, for each clip: a bare PyAV loop
    (decode and RGB conversion in one thread, what sdmae did before), ``iter_frames``
    as it runs here, and ``iter_frames`` with 2 conversion threads (what a machine
    with 8+ cores gets)."""
    import av

    from sdmae.data import video

    def pyav_default(path):
        def run():
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    frame.to_ndarray(format="rgb24")
        return run

    def sdmae_with(path, threads: int):
        def run():
            saved, video.DECODE_THREADS = video.DECODE_THREADS, threads
            try:
                for _ in iter_frames(path):
                    pass
            finally:
                video.DECODE_THREADS = saved
        return run

    variants = {"pyav_default": lambda p: pyav_default(p), "sdmae": lambda p: sdmae_with(p, video.DECODE_THREADS),
                "sdmae_2_threads": lambda p: sdmae_with(p, 2)}
    fns = {(clip, name): make(path) for clip, path in clips.items() for name, make in variants.items()}
    timed = timeit_interleaved(fns, max(repeats, 5), warmup=1)
    rates = {clip: {name: frames_n / timed[clip, name][0] for name in variants} for clip in clips}
    return rates | {"threads": video.DECODE_THREADS}


def baseline_fps(model: SDMAE, cfg, device: torch.device, batch: int, repeats: int) -> float:
    """The original architecture's forward alone (bench_model's baseline), fp32, random inputs -> frames/s."""
    from bench_model import baseline_forward

    m = cfg.model
    x = torch.randn(batch, m.in_chans, *m.input_size, device=device)
    ids_keep, ids_restore, _ = seeded_masks(torch.arange(batch), m.num_tokens, m.mask_ratio, seed=0, device=device)
    med, _, _ = timeit(lambda: baseline_forward(model, x, ids_keep, ids_restore), repeats, warmup=1,
                       sync=synchronizer(device))
    return batch / med


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny preset, a few frames: checks the script runs")
    parser.add_argument("--preset", default="avenue")
    parser.add_argument("--input-size", type=_size, help="model input HxW (default: the preset's)")
    parser.add_argument("--patch", type=int, help="patch size (default: the preset's)")
    parser.add_argument("--video-size", type=_size, help="video frame HxW (default: the preset's dataset's)")
    parser.add_argument("--frames", type=int, default=48, help="frames in the synthetic clip")
    parser.add_argument("--batch", type=int, default=None,
                        help="ScoreConfig.batch_size (on a CPU the Detector caps it at CPU_TOKENS_PER_FORWARD tokens)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain", action="store_true", help="score with the unfused model, in float32")
    parser.add_argument("--maps", action="store_true", help="file: also compute the cleaned maps, as sdmae evaluate "
                        "does for RBDC/TBDC")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="model precision, as Detector.load (auto: bf16 on native-bf16 hardware)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--source", default="file", choices=["file", "memory", "streams"],
                        help="file: decode a video file (end to end); memory: uint8 frames already on the device; "
                        "streams: live cameras through StreamScorer.push_many")
    parser.add_argument("--streams", type=int, default=16, help="streams: cameras of the as-fast-as-possible run")
    parser.add_argument("--cameras", default="1,2,4,8,12,16,20,24,32",
                        help="streams: camera counts of the real-time trials, tried in order until one falls behind")
    parser.add_argument("--camera-fps", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="streams: length of each real-time trial")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)

    device = device_and_threads(args.device, args.threads)
    preset = "tiny" if args.quick else args.preset
    frames_n = 12 if args.quick else args.frames
    repeats = 1 if args.quick else args.repeats
    cfg = get_preset(preset, input_size=args.input_size, patch=args.patch)
    if args.batch:
        cfg = cfg.changed(score={"batch_size": args.batch})  # else the preset's, as a user's run (capped on a CPU by the Detector)
    source = args.video_size or SOURCE.get(preset, cfg.model.input_size)

    model = SDMAE(cfg.model, generator=torch.Generator().manual_seed(0)).eval()
    precision = "fp32" if args.plain else resolve_precision(args.precision, device)
    scorer = model if args.plain else copy.deepcopy(model).fuse_for_inference().set_precision(precision)
    det = Detector(scorer, cfg, device)
    frames, _, _ = make_clip(seed=0, num_frames=frames_n, size=source, anomalies=1)

    if args.source == "memory":
        run_memory(det, frames, device, repeats, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.avi"
        write_video(path, frames, fps=25)
        if args.source == "streams":
            throughput = run_streams(det, frames, args.streams, repeats, args)
            counts = [args.streams] if args.quick else [int(k) for k in args.cameras.split(",")]
            trials = run_cameras(det, path, counts, 1.0 if args.quick else args.seconds)
            print_streams(det, frames, throughput, trials, args)
            return

        # correctness first: the fast path scores like the plain model
        raw = det.score_video(path).raw
        rel = 0.0
        if not args.plain:
            ref = Detector(model, cfg, device).score_video(path).raw
            rel = float(np.abs(raw - ref).max() / max(np.abs(ref).max(), 1e-12))
            if precision == "fp32" and rel > 1e-4:
                raise SystemExit(f"fused model scores differ from the plain model (relative {rel:.2e})")

        # the default score and the fast one (--fast: one masked pass), round-robin so that
        # their ratio holds on a shared machine; warm-up of the default done by the correctness pass
        fast = Detector(scorer, cfg.changed(score=FAST_SCORE), device)
        timed = timeit_interleaved({"default": lambda: det.score_video(path, with_maps=args.maps),
                                    "fast": lambda: fast.score_video(path, with_maps=args.maps)},
                                   repeats, warmup=1, sync=synchronizer(device))
        med, _, e2e = timed["default"]
        fps_fast = frames_n / timed["fast"][0]
        runs = [instrumented_run(det, path, device, args.maps) for _ in range(repeats)]
        original_fps = baseline_fps(model, cfg, device, 32, repeats)
        mpeg4 = write_video(Path(tmp) / "clip_mpeg4.avi", frames, fps=25, codec="mpeg4")  # yuv420p, as Avenue's
        decoding = decode_rates({"MJPEG": path, "MPEG-4 (yuv420p)": mpeg4}, frames_n, repeats)

    stages = {k: statistics.median(r[0].get(k, 0.0) for r in runs) for k in
              ("wait", "prepare", "model", "score", "maps", "other", "decode")}
    total_i = statistics.median(r[1] for r in runs)
    fps_e2e = frames_n / med
    fps_model = frames_n / stages["model"]
    h, w = cfg.model.input_size
    dev_name = device_name(device)
    print(f"# sdmae pipeline | preset {preset} | video {source[0]}x{source[1]} MJPEG, {frames_n} frames -> model "
          f"{h}x{w} p{cfg.model.patch} | batch {det.batch_size} | {precision} | "
          f"{'unfused' if args.plain else 'fused'} | {'maps' if args.maps else 'no maps'} | {cfg.score.test_masks} "
          f"test masks | device {device} ({dev_name}; {cpu_features()}) | threads {torch.get_num_threads()} | torch "
          f"{torch.__version__} | median of {repeats} | {' '.join(sys.argv)}")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| end-to-end s (min-max) | {med:.2f} ({min(e2e):.2f}-{max(e2e):.2f}) |")
    print(f"| end-to-end frames/s | {fps_e2e:.2f} |")
    print(f"| model-only frames/s (model stage, instrumented run) | {fps_model:.2f} |")
    # same frames, same moments: the instrumented run's total over its model stage
    print(f"| end-to-end / model-only (instrumented run: model s / total s) | {100 * stages['model'] / total_i:.0f}% |")
    print(f"| original model's forward alone, fp32, batch 32 (one pass): frames/s | {original_fps:.2f} |")
    print(f"| end-to-end / original model's forward alone | {fps_e2e / original_fps:.2f}x |")
    print(f"| fast score (--fast, {FAST_SCORE}) end-to-end frames/s | {fps_fast:.2f} |")
    print(f"| fast score / original model's forward alone | {fps_fast / original_fps:.2f}x |")
    print(f"| default ({cfg.score.test_masks} passes) cost / fast (1 pass) cost | {fps_fast / fps_e2e:.2f}x |")
    print(f"| frame scores vs plain float32 model, max relative difference | {rel:.1e} |")
    for clip, rates in decoding.items():
        if clip == "threads":
            continue
        print(f"| decode alone (no model), {clip}: bare PyAV loop / sdmae's iter_frames "
              f"({decoding['threads']} conversion threads here) / with 2 conversion threads: frames/s | "
              f"{rates['pyav_default']:.0f} / {rates['sdmae']:.0f} / {rates['sdmae_2_threads']:.0f} |")
    print("| stage | s (share of instrumented run) |")
    for k, v in stages.items():
        where = " (worker thread, overlapped)" if k == "decode" else ""
        print(f"| {k}{where} | {v:.3f} ({100 * v / total_i:.1f}%) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(preset=preset, frames=frames_n, batch=det.batch_size, e2e_s=e2e,
                           stages=stages, fps_e2e=fps_e2e, fps_model=fps_model, fps_original=original_fps,
                           fps_fast=fps_fast, decoding=decoding,
                           threads=torch.get_num_threads(), torch=torch.__version__, fast=not args.plain,
                           precision=precision, maps=args.maps, rel_vs_plain=rel), f, indent=1)


if __name__ == "__main__":
    main()
