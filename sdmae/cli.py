"""The ``sdmae`` command: train, evaluate, score, calibrate, watch, demo.

A user's mistake (a missing run, missing or unreadable data, a layout that does
not match, an argument out of range, an output path that cannot be written)
is one line, ``sdmae <command>: error: ...`` naming the file or argument, and
exit status 2; arguments and outputs are checked before any work. Anything else
is a bug and keeps its traceback. Outputs are written atomically, so a failed
command leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
import warnings
from pathlib import Path

from . import __version__, watch
from .data.layouts import LAYOUTS
from .errors import SdmaeError


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size must look like 320x640, got {text!r}") from None
    return h, w


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdmae", description="Video anomaly detection with self-distilled "
                                     "masked auto-encoders (Ristea et al., CVPR 2024).")
    parser.add_argument("--version", action="version", version=f"sdmae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the teacher, then the student, on a dataset's training split")
    t.add_argument("--data", required=True, help="dataset root, in the layout its authors distribute")
    t.add_argument("--layout", choices=LAYOUTS, help="dataset layout (detected when omitted)")
    t.add_argument("--preset", default="tiny", help="avenue, shanghaitech, ubnormal, ped2 or tiny")
    t.add_argument("--recipe", default="sdmae", choices=["sdmae", "authors"],
                   help="sdmae's defaults, or the authors' recipe (their official code's choices, see README)")
    t.add_argument("--out", required=True, help="run directory (config, checkpoints, log)")
    t.add_argument("--input-size", type=_size, help="model input size HxW (multiple of the patch)")
    t.add_argument("--patch", type=int, help="patch size")
    t.add_argument("--epochs", type=int, help="teacher epochs")
    t.add_argument("--student-epochs", type=int, help="student epochs")
    t.add_argument("--batch-size", type=int, help="global batch size")
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--workers", type=int, help="data loading worker processes")
    t.add_argument("--seed", type=int, help="seed of weights, data order, masks and pasted anomalies")
    t.add_argument("--objects", help="folder of RGBA cut-outs, or a UBnormal root whose annotated abnormal "
                   "objects (whole tracks) are pasted as synthetic anomalies (default: built-in cut-outs)")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_false_alarm_rate(t, "1 %%; the run keeps it")
    t.add_argument("--cache-dir", help="where the training frames are decoded once and kept, for this and later "
                   "runs (default: $SDMAE_CACHE_DIR, else ~/.cache/sdmae/frames)")
    _add_threads(t)

    e = sub.add_parser("evaluate", help="score a dataset's test split: micro/macro AUC, RBDC, TBDC")
    e.add_argument("run", help="run directory written by sdmae train")
    e.add_argument("--data", required=True)
    e.add_argument("--layout", choices=LAYOUTS)
    e.add_argument("--json", help="also write the metrics to this JSON file")
    e.add_argument("--no-maps", action="store_true", help="frame scores only (no RBDC/TBDC)")
    e.add_argument("--normalize", action="store_true", help="min-max normalise scores per video (needs the "
                   "whole video; off by default)")
    _add_fast(e)
    _add_scoring(e)

    s = sub.add_parser("score", help="score your own videos: CSV, plot, optional overlay video",
                       description="Score video files or frame folders. Each input gives NAME.csv, NAME.png "
                       "(and NAME_overlay.mp4) in --out; NAME is a video's file name without its extension "
                       "or a frame folder's name ('.' gives the current folder's name). Inputs that would "
                       "share a NAME keep their extension (clip.avi, clip.mp4), then add parent folders "
                       "until they differ (a_clip.avi, b_clip.avi).")
    s.add_argument("run")
    s.add_argument("inputs", nargs="+", help="video files or frame folders")
    s.add_argument("--out", required=True, help="folder for the outputs (created)")
    s.add_argument("--overlay", action="store_true", help="also write the video with the anomaly heat map")
    _add_false_alarm_rate(s, "the run's (1 %% unless trained with another)")
    _add_fast(s)
    _add_scoring(s)

    c = sub.add_parser("calibrate", help="set a run's alert threshold on normal footage, without retraining",
                       description="Score normal videos (say, a new week of a camera's footage) with a trained "
                       "run and keep their scores in RUN/calibration.json, replacing what training kept there: the "
                       "alert threshold is the smoothed score that --false-alarm-rate of these frames exceed.")
    c.add_argument("run")
    c.add_argument("--data", required=True, help="folder of normal video files or frame folders")
    _add_false_alarm_rate(c, "the run's, 1 %% unless trained with another; only for the threshold printed")
    _add_scoring(c)

    w = watch.add_parser(sub)
    _add_false_alarm_rate(w, "the run's, 1 %% unless trained with another")
    _add_fast(w)
    _add_scoring(w)

    d = sub.add_parser("demo", help="synthetic dataset -> train both stages -> evaluate -> report")
    d.add_argument("--out", default="sdmae-demo", help="where data, run and report go (default ./sdmae-demo)")
    d.add_argument("--epochs", type=int, default=None, help="teacher epochs (default: the demo's budget)")
    d.add_argument("--student-epochs", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    _add_scoring(d)
    return parser


def _add_scoring(parser: argparse.ArgumentParser) -> None:
    """--device, --precision and --threads: where and how a command runs the model."""
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    _add_precision(parser)
    _add_threads(parser)


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help="CPU threads for the model and sdmae's kernels (default: "
                        "torch's, one per core); on a machine shared with other jobs see README, Speed")


def _add_fast(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="one masked pass a frame instead of two: about twice "
                        "the frames/s, 0.028 lower micro AUC on average on real footage (README, Speed)")


def fast_score(args: argparse.Namespace) -> dict | None:
    """The score changes that --fast asks for."""
    from .config import FAST_SCORE

    return FAST_SCORE if getattr(args, "fast", False) else None


def _add_false_alarm_rate(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--false-alarm-rate", type=float, help="fraction of normal frames allowed above the alert "
                        f"threshold (default: {default})")


def _add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="model compute dtype when scoring; auto: bf16 where the device has native "
                        "bf16 (it left AUCs unchanged, see benchmarks/RESULTS.md), else fp32")


# Errors about a path the user gave, with the package's message or the OS's naming the path.
_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import distributed

    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "score": cmd_score, "calibrate": cmd_calibrate,
                "watch": watch.run, "demo": cmd_demo}
    with warnings.catch_warnings():
        warnings.showwarning = functools.partial(_show_warning, args.command)
        try:
            _check_numbers(args, "--threads", "--false-alarm-rate")
            if args.threads is not None:
                import torch

                torch.set_num_threads(args.threads)  # torch's and sdmae's kernels' OpenMP threads (one runtime)
            _check_device(args.device)
            return commands[args.command](args)
        except SdmaeError as exc:
            return _fail(args.command, str(exc))
        except OSError as exc:
            if not isinstance(exc, _PATH_ERRORS) and exc.filename is None:
                raise  # names no file: not something the user can fix by pointing elsewhere
            return _fail(args.command, _os_error_message(exc))
        except KeyboardInterrupt:
            print(f"sdmae {args.command}: interrupted (a training run continues with --resume)", file=sys.stderr)
            return 130
        finally:
            distributed.shutdown()


def _fail(command: str, message: str) -> int:
    # One line even when a library's message spans several.
    print(f"sdmae {command}: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return 2


def _show_warning(command: str, message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line like the errors, not with the source line that raised them."""
    print(f"sdmae {command}: warning: {' '.join(str(message).splitlines())}", file=sys.stderr)


def _os_error_message(exc: OSError) -> str:
    if exc.filename is None or exc.strerror is None:
        return str(exc)  # raised by the package, its message names the path
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"{where}: {exc.strerror}"


def _check_device(device: str) -> None:
    if device == "cuda":  # a GPU for this process, before any work
        from .distributed import local_cuda_device

        local_cuda_device()


# Numbers that argparse accepts but that would fail, or do nothing useful, only mid-run.
_NUMBER_RULES = {
    "--epochs": (lambda v: v >= 0, ">= 0"),
    "--student-epochs": (lambda v: v >= 0, ">= 0"),
    "--batch-size": (lambda v: v >= 1, ">= 1"),
    "--lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "--workers": (lambda v: v >= 0, ">= 0"),
    "--seed": (lambda v: v >= 0, ">= 0"),
    "--patch": (lambda v: v >= 1, ">= 1"),
    "--threads": (lambda v: v >= 1, ">= 1"),
    "--false-alarm-rate": (lambda v: 0 < v <= 0.5, "in (0, 0.5], e.g. 0.01"),
}


def _check_numbers(args: argparse.Namespace, *flags: str) -> None:
    for flag in flags:
        value = getattr(args, flag[2:].replace("-", "_"), None)
        valid, rule = _NUMBER_RULES[flag]
        if value is not None and not valid(value):
            raise SdmaeError(f"{flag} must be {rule}, got {value}")


def _check_out_dir(path: Path, flag: str) -> None:
    """Refuse, before any work, an output folder that cannot be created or written into."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise SdmaeError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SdmaeError(f"{flag} {path}: {existing} is not writable")


def _check_out_file(path: Path, flag: str) -> None:
    """Refuse, before any work, an output file that could not be written."""
    if path.is_dir():
        raise SdmaeError(f"{flag} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise SdmaeError(f"{flag} {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise SdmaeError(f"{flag} {path}: folder {path.parent} is not writable")


def cmd_train(args: argparse.Namespace) -> int:
    from .config import get_preset
    from .train import train

    _check_numbers(args, "--epochs", "--student-epochs", "--batch-size", "--lr", "--workers", "--seed", "--patch")
    overrides = {k: v for k, v in {"epochs": args.epochs, "student_epochs": args.student_epochs,
                                   "batch_size": args.batch_size, "lr": args.lr, "num_workers": args.workers,
                                   "seed": args.seed}.items() if v is not None}
    cfg = get_preset(args.preset, recipe=args.recipe, input_size=args.input_size, patch=args.patch, **overrides)
    if args.false_alarm_rate is not None:
        cfg = cfg.changed(alert=dict(false_alarm_rate=args.false_alarm_rate))
    _require_dir(args.data, "--data")
    _check_out_dir(Path(args.out), "--out")
    if args.cache_dir:
        _check_out_dir(Path(args.cache_dir), "--cache-dir")
    result = train(cfg, args.data, args.layout, args.out, device=args.device, resume=args.resume,
                   objects=args.objects, cache_dir=args.cache_dir)
    if result.teacher_losses or result.student_losses:
        print(f"trained {args.out}: teacher loss {_last(result.teacher_losses)}, "
              f"student loss {_last(result.student_losses)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .detector import Detector
    from .evaluate import evaluate
    from .report import write_json

    _require_dir(args.data, "--data")
    if args.json:
        _check_out_file(Path(args.json), "--json")
    detector = Detector.load(args.run, device=_device(args.device), precision=args.precision,
                             score=fast_score(args))
    result = evaluate(detector, args.data, args.layout, with_maps=not args.no_maps, device=args.device,
                      normalize=args.normalize)
    if result is None:  # another torchrun rank: rank 0 reports
        return 0
    print_metrics(result.metrics)
    if args.json:
        write_json(args.json, result.metrics)
        print(f"metrics written to {args.json}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .data import iter_frames, video_info
    from .detector import DEFAULT_FPS, Detector
    from .events import alert_mask
    from .report import plot_scores, write_jsonl, write_overlay_video, write_scores_csv

    out = Path(args.out)
    _check_out_dir(out, "--out")
    detector = Detector.load(args.run, device=_device(args.device), precision=args.precision,
                             score=fast_score(args), alert=_alert_changes(args))
    # Every input must open (a missing or unreadable one is named) before any is scored.
    infos = [video_info(source) for source in args.inputs]
    names = output_names(args.inputs)
    threshold = detector.threshold
    if threshold is None:
        warnings.warn(f"{args.run}: no alert threshold, so no normalized and alert columns and no events.jsonl: "
                      f"{detector.uncalibrated_reason()}")
    elif shortfall := detector.calibration.shortfall(detector.cfg.alert.false_alarm_rate):
        warnings.warn(f"{args.run}: {shortfall}")
    out.mkdir(parents=True, exist_ok=True)
    events = []
    for source, name, info in zip(args.inputs, names, infos):
        scores = detector.score_video(source, with_maps=args.overlay)
        line = f"{source}: {len(scores.raw)} frames, max smoothed score {scores.smoothed.max():.4g} at frame " \
               f"{int(scores.smoothed.argmax())}"
        columns = {}
        if threshold is not None:
            fps = info.fps or DEFAULT_FPS
            normalized = threshold.normalize(scores.smoothed)
            found = detector.events(scores.smoothed, fps)
            columns = dict(normalized=normalized, alert=alert_mask(found, len(scores.raw)))
            events += [e.to_dict(fps, source=str(source), peak_score=round(float(normalized[e.peak_frame]), 4))
                       for e in found]
            line += f", {len(found)} event{'s' if len(found) != 1 else ''}"
        write_scores_csv(out / f"{name}.csv", scores.raw, scores.smoothed, **columns)
        plot_scores(out / f"{name}.png", scores.smoothed, raw=scores.raw, title=name,
                    threshold=None if threshold is None else threshold.value)
        line += f" -> {out / (name + '.csv')}"
        if args.overlay:
            write_overlay_video(out / f"{name}_overlay.mp4", iter_frames(source), scores.maps,
                                fps=info.fps or DEFAULT_FPS)
            line += f", {out / (name + '_overlay.mp4')}"
        print(line)
    if threshold is not None:
        write_jsonl(out / "events.jsonl", events)
        print(f"{len(events)} event{'s' if len(events) != 1 else ''} -> {out / 'events.jsonl'}")
    return 0


def _alert_changes(args: argparse.Namespace) -> dict:
    return {} if args.false_alarm_rate is None else {"false_alarm_rate": args.false_alarm_rate}


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibration import calibrate_run
    from .data import video_info
    from .data.video import is_video_source
    from .detector import Detector

    _require_dir(args.data, "--data")
    run = Path(args.run)
    # a finished run, before any video is decoded
    detector = Detector.load(run, device=_device(args.device), precision=args.precision, alert=_alert_changes(args))
    _check_out_dir(run, "RUN")
    data = Path(args.data)
    sources = sorted((p for p in data.iterdir() if not p.name.startswith(".") and is_video_source(p)),
                     key=lambda p: p.name)
    if not sources:
        raise SdmaeError(f"--data {data}: no video files or frame folders in it")
    for source in sources:
        video_info(source)  # every video must open before any is scored
    calibrations = calibrate_run(detector, run, sources, f"{len(sources)} videos in {data.resolve()}",
                                 progress=True)
    rate, sigma = detector.cfg.alert.false_alarm_rate, detector.cfg.score.smoothing_sigma
    thresholds = "; ".join(f"{name} score {c.threshold(sigma, rate).value:.4g}, live "
                           f"{c.threshold(sigma, rate, causal=True).value:.4g}"
                           for name, c in zip(("default", "fast"), calibrations))
    print(f"calibrated {run} on {calibrations[0].frames} frames of {len(sources)} videos -> "
          f"{run / 'calibration.json'}: alert thresholds (smoothed score, sigma {sigma:g}, {100 * rate:g} % false "
          f"alarms): {thresholds}")
    shortfall = calibrations[0].shortfall(rate)
    if shortfall:
        warnings.warn(f"{run}: {shortfall}")
    return 0


def output_names(sources: list[str]) -> list[str]:
    """The output name of each ``sdmae score`` input, distinct (ignoring case) and readable.

    A video file gives its stem (``cam.mp4`` -> ``cam``), a frame folder its name
    (``.`` -> the current folder's name). Inputs that would share a name use their
    file name with its extension (``clip.avi``, ``clip.mp4``), then prepend parent
    folders, joined by ``_``, until they differ (``a_clip.avi``, ``b_clip.avi``).
    """
    first = {}
    for source in sources:
        real = Path(source).resolve()
        if real in first:
            raise SdmaeError(f"input {source} is given twice (also as {first[real]})")
        first[real] = source
    # Absolute but not resolved: a link is named as the user named it, "." and ".." as folders.
    paths = [Path(os.path.abspath(source)) for source in sources]

    def name(path: Path, detail: int) -> str | None:
        """detail 0: stem; 1: file name; k > 1: k - 1 parent folders and the file name (None: none left)."""
        if detail == 0:
            return path.stem if path.is_file() else path.name
        parents = [p.name for p in path.parents if p.name]
        if detail - 1 > len(parents):
            return None
        return "_".join([*reversed(parents[:detail - 1]), path.name])

    details = [0] * len(paths)
    while True:
        names = [name(path, d) for path, d in zip(paths, details)]
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n.casefold(), []).append(i)
        clashes = [group for group in groups.values() if len(group) > 1]
        if not clashes:
            return names
        for group in clashes:
            more = [i for i in group if name(paths[i], details[i] + 1) is not None]
            if not more:
                raise SdmaeError(f"cannot give distinct output names to the inputs "
                                 f"{', '.join(sources[i] for i in group)}")
            for i in more:
                details[i] += 1


# The demo's budget on a 2-core CPU (see README): dataset + training + evaluation in under 10 minutes.
DEMO_EPOCHS, DEMO_STUDENT_EPOCHS = 6, 3


def cmd_demo(args: argparse.Namespace) -> int:
    from .config import get_preset
    from .data import make_dataset
    from .detector import Detector
    from .evaluate import evaluate
    from .report import plot_scores, write_json, write_overlay_image

    _check_numbers(args, "--epochs", "--student-epochs", "--seed")
    out = Path(args.out)
    _check_out_dir(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"[1/4] writing the synthetic dataset to {out / 'data'} ...", flush=True)
    data = make_dataset(out / "data", layout="avenue", seed=args.seed)
    cfg = get_preset("tiny", epochs=args.epochs if args.epochs is not None else DEMO_EPOCHS,
                     student_epochs=args.student_epochs if args.student_epochs is not None else DEMO_STUDENT_EPOCHS,
                     seed=args.seed)
    run = out / "run"
    resume = (run / "teacher.pt").exists()
    print(f"[2/4] training teacher ({cfg.train.epochs} epochs) and student ({cfg.train.student_epochs} epochs), "
          f"preset tiny {cfg.model.input_size[0]}x{cfg.model.input_size[1]} p{cfg.model.patch} -> {run}"
          + (" (resuming)" if resume else ""), flush=True)
    from .train import train

    train(cfg, data, "avenue", run, device=args.device, resume=resume, cache_dir=out / "frame-cache")
    print("[3/4] scoring the test videos ...", flush=True)
    detector = Detector.load(run, device=_device(args.device), precision=args.precision)
    result = evaluate(detector, data, "avenue", device=args.device, keep_maps=True)
    report = out / "report"
    report.mkdir(exist_ok=True)
    print("[4/4] writing the report ...", flush=True)
    write_json(report / "metrics.json", result.metrics)
    threshold = detector.threshold
    for rec, scores in zip(result.videos, result.scores):
        plot_scores(report / f"scores_{rec.name}.png", scores.smoothed, rec.labels, raw=scores.raw,
                    title=f"test video {rec.name}", threshold=None if threshold is None else threshold.value)
    _demo_overlays(report, result, write_overlay_image)
    print_metrics(result.metrics)
    print(f"demo finished in {time.perf_counter() - started:.0f} s; report: {report.resolve()}")
    return 0


def _demo_overlays(report: Path, result, write_overlay_image, count: int = 4) -> None:
    """The most anomalous frame of the first few test videos, with its heat map."""
    import numpy as np

    from .data import read_video

    vmax = max(float(np.quantile(s.maps, 0.999)) for s in result.scores if s.maps is not None)
    for rec, scores in list(zip(result.videos, result.scores))[:count]:
        t = int(np.argmax(scores.smoothed))
        frame = read_video(rec.source, max_frames=t + 1)[t]
        write_overlay_image(report / f"overlay_{rec.name}_frame{t}.png", frame, scores.maps[t], vmax)


def print_metrics(metrics: dict) -> None:
    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}"

    print("| micro AUC | macro AUC | RBDC | TBDC | frames | FPS (end-to-end) |")
    print("|---:|---:|---:|---:|---:|---:|")
    fps = metrics.get("fps")
    print(f"| {fmt(metrics['micro_auc'])} | {fmt(metrics['macro_auc'])} | {fmt(metrics['rbdc'])} | "
          f"{fmt(metrics['tbdc'])} | {metrics['frames']} | {'n/a' if fps is None else f'{fps:.1f}'} |")
    alerts = metrics.get("alerts")
    if alerts and alerts["normal_alerted"] is not None:
        print(f"alerts at the calibrated threshold ({100 * alerts['false_alarm_rate']:g} % false alarms on the "
              f"held-back normal frames): {100 * alerts['normal_alerted']:.1f} % of the normal test frames alerted, "
              f"{alerts['segments_found']} of {alerts['segments']} abnormal segments found, {alerts['events']} "
              "events")


def _require_dir(path: str, flag: str) -> None:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{flag} {path}: no such directory")


def _device(name: str) -> str:
    if name == "cuda":
        from .distributed import local_cuda_device

        return str(local_cuda_device())
    return name


def _last(values: list[float]) -> str:
    return f"{values[-1]:.4f}" if values else "(already trained)"


if __name__ == "__main__":
    sys.exit(main())
