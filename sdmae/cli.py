"""The ``sdmae`` command: train, evaluate, score, demo.

Each command prints a clear error and exits non-zero for a missing run, missing
data, a layout that does not match or an unreadable video; outputs are written
atomically, so a failed command leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__

LAYOUT_CHOICES = ["avenue", "shanghaitech", "ped2", "ped1", "ubnormal", "folder"]


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
    t.add_argument("--layout", choices=LAYOUT_CHOICES, help="dataset layout (detected when omitted)")
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

    e = sub.add_parser("evaluate", help="score a dataset's test split: micro/macro AUC, RBDC, TBDC")
    e.add_argument("run", help="run directory written by sdmae train")
    e.add_argument("--data", required=True)
    e.add_argument("--layout", choices=LAYOUT_CHOICES)
    e.add_argument("--json", help="also write the metrics to this JSON file")
    e.add_argument("--no-maps", action="store_true", help="frame scores only (no RBDC/TBDC)")
    e.add_argument("--normalize", action="store_true", help="min-max normalise scores per video (needs the "
                   "whole video; off by default)")
    e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    _add_precision(e)

    s = sub.add_parser("score", help="score your own videos: CSV, plot, optional overlay video")
    s.add_argument("run")
    s.add_argument("inputs", nargs="+", help="video files or frame folders")
    s.add_argument("--out", required=True)
    s.add_argument("--overlay", action="store_true", help="also write the video with the anomaly heat map")
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    _add_precision(s)

    d = sub.add_parser("demo", help="synthetic dataset -> train both stages -> evaluate -> report")
    d.add_argument("--out", default="sdmae-demo", help="where data, run and report go (default ./sdmae-demo)")
    d.add_argument("--epochs", type=int, default=None, help="teacher epochs (default: the demo's budget)")
    d.add_argument("--student-epochs", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    _add_precision(d)
    return parser


def _add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="model compute dtype when scoring; auto: bf16 where the device has native "
                        "bf16 (it left AUCs unchanged, see benchmarks/RESULTS.md), else fp32")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DatasetError, VideoError
    from .checkpoint import CheckpointError

    from . import distributed

    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "score": cmd_score, "demo": cmd_demo}[args.command](args)
    except (FileNotFoundError, FileExistsError, DatasetError, VideoError, CheckpointError, ValueError) as exc:
        print(f"sdmae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sdmae {args.command}: interrupted (a training run continues with --resume)", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()


def cmd_train(args: argparse.Namespace) -> int:
    from .config import get_preset
    from .train import train

    overrides = {k: v for k, v in {"epochs": args.epochs, "student_epochs": args.student_epochs,
                                   "batch_size": args.batch_size, "lr": args.lr, "num_workers": args.workers,
                                   "seed": args.seed}.items() if v is not None}
    cfg = get_preset(args.preset, recipe=args.recipe, input_size=args.input_size, patch=args.patch, **overrides)
    _require_dir(args.data, "--data")
    result = train(cfg, args.data, args.layout, args.out, device=args.device, resume=args.resume,
                   objects=args.objects)
    if result.teacher_losses or result.student_losses:
        print(f"trained {args.out}: teacher loss {_last(result.teacher_losses)}, "
              f"student loss {_last(result.student_losses)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .detector import Detector
    from .evaluate import evaluate
    from .report import write_json

    _require_dir(args.data, "--data")
    detector = Detector.load(args.run, device=_device(args.device), precision=args.precision)
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
    from .detector import Detector
    from .report import plot_scores, write_overlay_video, write_scores_csv

    detector = Detector.load(args.run, device=_device(args.device), precision=args.precision)
    out = Path(args.out)
    for source in args.inputs:  # check every input before writing anything
        if not Path(source).exists():
            raise FileNotFoundError(f"input not found: {source}")
    out.mkdir(parents=True, exist_ok=True)
    for source in args.inputs:
        name = Path(source).stem or Path(source).name
        scores = detector.score_video(source, with_maps=args.overlay)
        write_scores_csv(out / f"{name}.csv", scores.raw, scores.smoothed)
        plot_scores(out / f"{name}.png", scores.smoothed, raw=scores.raw, title=name)
        line = f"{source}: {len(scores.raw)} frames, max smoothed score {scores.smoothed.max():.4g} at frame " \
               f"{int(scores.smoothed.argmax())} -> {out / (name + '.csv')}"
        if args.overlay:
            fps = video_info(source).fps or 25.0
            write_overlay_video(out / f"{name}_overlay.mp4", iter_frames(source), scores.maps, fps=fps)
            line += f", {out / (name + '_overlay.mp4')}"
        print(line)
    return 0


# The demo's budget on a 2-core CPU (see README): dataset + training + evaluation in under 10 minutes.
DEMO_EPOCHS, DEMO_STUDENT_EPOCHS = 6, 3


def cmd_demo(args: argparse.Namespace) -> int:
    from .config import get_preset
    from .data import make_dataset
    from .detector import Detector
    from .evaluate import evaluate
    from .report import plot_scores, write_json, write_overlay_image

    out = Path(args.out)
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

    train(cfg, data, "avenue", run, device=args.device, resume=resume)
    print("[3/4] scoring the test videos ...", flush=True)
    detector = Detector.load(run, device=_device(args.device), precision=args.precision)
    result = evaluate(detector, data, "avenue", device=args.device)
    report = out / "report"
    report.mkdir(exist_ok=True)
    print("[4/4] writing the report ...", flush=True)
    write_json(report / "metrics.json", result.metrics)
    for rec, scores in zip(result.videos, result.scores):
        plot_scores(report / f"scores_{rec.name}.png", scores.smoothed, rec.labels, raw=scores.raw,
                    title=f"test video {rec.name}")
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


def _require_dir(path: str, flag: str) -> None:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{flag} {path}: no such directory")


def _device(name: str) -> str:
    if name == "cuda":
        import os

        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return name


def _last(values: list[float]) -> str:
    return f"{values[-1]:.4f}" if values else "(already trained)"


if __name__ == "__main__":
    sys.exit(main())
