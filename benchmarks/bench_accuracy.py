"""Accuracy on real footage: the detector against a model-free baseline and the authors' recipe.

Dev sets are cut from real fixed-camera clips by ``sdmae.data.devsets.footage``, two
scenes (``footage.SCENES``): "campus", pedestrians on a path (Debian's
opencv-doc ``vtest.avi``), and "skaters", a crowd on a frozen lake filmed in
1902 (grain, flicker; tweepy's ``assets/video.mp4`` in Debian's source
package). Each scene has two splits (split 0 trains on the first half and tests
on the second, split 1 the reverse); the anomalies are made of the footage
itself: runners, cyclists, thrown objects, everybody sped up. Each recipe is
trained on each split with every seed (160x224, patch 16, 30 teacher + 10
student epochs), and every row is scored on the split's test videos:

  constant              one score for every frame; must come out at 0.5
  frame difference      ``sdmae.baselines.frame_difference``: motion, no model
  authors' recipe       ``get_preset(..., recipe="authors")`` on sdmae's schedule
  authors + <change>    one of sdmae's scoring deviations (the trained models
                        are reused); ``--training-changes`` also trains each
                        training-side deviation alone
  authors + sdmae training   sdmae's trained models, the authors' score
  sdmae, <field>=<v>    ``--ablate``: sdmae's recipe with one training-side
                        field at the authors' value (what that deviation gains)
  sdmae default         the preset as shipped

Micro and macro AUC, the mean over seeds and the min-max spread, one table per
scene and split, then the default's per-video table (per-video AUC; normal
frames' mean and 95th percentile; abnormal frames' mean), which shows when a
busy normal video scores like an anomaly in a quiet one. Trained runs are kept
in ``--work`` and reused.

``--small-objects`` adds, per split, a set cut from the same test footage whose
only anomalies are balls (12-20 % of a person's height, thrown fast), scored
with the same runs: frame difference, the authors' recipe and the default.

The clips: ``--footage`` / ``$SDMAE_FOOTAGE`` (campus), ``--skaters`` /
``$SDMAE_FOOTAGE_SKATERS``; run without them to see where the script looks and
how to get each clip. ``--quick`` runs a smoke test on the synthetic street in
seconds.

Run: python benchmarks/bench_accuracy.py [--footage FILE] [--skaters FILE] [--scenes campus skaters]
     [--work DIR] [--seeds 0 1] [--batch-size N] [--training-changes] [--ablate PART.FIELD ...]
     [--small-objects] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sdmae.baselines import frame_difference
from sdmae.config import get_preset, recipe_changes
from sdmae.data import load_dataset, make_clip
from sdmae.data.devsets.footage import SCENES, event_plan, find_footage, make_footage_dataset
from sdmae.detector import Detector
from sdmae.metrics import alert_quality, macro_auc, micro_auc, roc_auc
from sdmae.postprocess import smooth_scores
from sdmae.train import TrainFrames, load_checkpoint, train

SPLITS = (0, 1)


@dataclasses.dataclass
class Setting:
    preset: str = "avenue"
    input_size: tuple = (160, 224)
    patch: int = 16
    epochs: int = 30
    student_epochs: int = 10
    sigma: float = 3.0  # frames at the footage's 10 fps (0.3 s); see the sigma sweep printed at the end
    batch_size: int | None = None  # None: the preset's
    calibration_fraction: float | None = None  # None: the preset's


def config(recipe: str, seed: int, s: Setting):
    schedule = dict(epochs=s.epochs, student_epochs=s.student_epochs, seed=seed)
    if s.batch_size:
        schedule["batch_size"] = s.batch_size
    if s.calibration_fraction is not None and recipe == "sdmae":
        schedule["calibration_fraction"] = s.calibration_fraction
    return get_preset(s.preset, recipe=recipe, input_size=s.input_size, patch=s.patch, **schedule)


def trained(recipe: str, split: int, seed: int, data: Path, frames, work: Path, s: Setting, log) -> Path:
    return train_once(config(recipe, seed, s), f"{recipe}-split{split}", data, frames, work, log)


# Training fields added since runs were first kept here, at the values that train as
# before they existed: left out of the hash, so that those runs are reused.
_LEGACY = {("train", "calibration_fraction"): 0.0}


def run_digest(cfg) -> str:
    """Hash of what training depends on (the alert settings do not), in the config layout
    of version 1, so that runs kept from then are reused."""
    d = cfg.to_dict()
    d.pop("alert")
    d.pop("version")
    d["model"].update(in_chans=cfg.model.in_chans, out_chans=cfg.model.out_chans)
    for (part, field), value in _LEGACY.items():
        if d[part][field] == value:
            del d[part][field]
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def train_once(cfg, name: str, data: Path, frames, work: Path, log) -> Path:
    """Train cfg into work/runs/<name>-<config hash>, or reuse that run when it is complete."""
    digest = run_digest(cfg)
    run = work / "runs" / f"{name}-seed{cfg.train.seed}-{digest}"
    student = run / "student.pt"
    if student.is_file() and load_checkpoint(student)["done"]:
        return run
    started = time.perf_counter()
    train(cfg, data, "avenue", run, resume=run.exists(), progress=False, frames=frames)
    log(f"  trained {run.name} in {time.perf_counter() - started:.0f} s")
    return run


def model_scores(run: Path, score_changes: dict, videos: list, sigma: float) -> list[np.ndarray]:
    detector = Detector.load(run, precision="fp32", score=dict(score_changes, smoothing_sigma=sigma))
    return [detector.score_frames(v).smoothed for v in videos]


# (gap, minimum length) in seconds of the event settings compared; the first is the default's.
EVENT_SETTINGS = ((1.0, 0.0), (0.0, 0.0), (0.5, 0.0), (2.0, 0.0), (1.0, 0.5))


def alert_rows(run: Path, sigma: float, videos: list, labels: list, fps: float) -> list[dict]:
    """The run's calibrated threshold (held-back training frames, the default false-alarm
    rate) on the test videos, under each event setting: the fraction of normal frames
    inside an event, and the fraction of abnormal segments that an event overlaps."""
    from sdmae.events import frames_for

    detector = Detector.load(run, precision="fp32", score={"smoothing_sigma": sigma})
    threshold = detector.threshold
    if threshold is None:
        return []
    smoothed = [detector.score_frames(v).smoothed for v in videos]
    rows = [{"gap_seconds": gap, "min_seconds": shortest, "threshold": threshold.value,
             "false_alarm_rate": detector.cfg.alert.false_alarm_rate,
             **alert_quality(smoothed, labels, threshold.value, frames_for(gap, fps),
                             max(1, frames_for(shortest, fps)))}
            for gap, shortest in EVENT_SETTINGS]
    rows[0]["oracle"] = best_threshold(smoothed, labels, frames_for(EVENT_SETTINGS[0][0], fps))
    return rows


def best_threshold(smoothed: list, labels: list, gap: int, found_at_least: float = 0.8) -> dict | None:
    """The threshold, chosen with the labels, that finds ``found_at_least`` of the abnormal
    segments with the fewest normal frames alerted: what the score allows at best."""
    best = None
    for threshold in np.unique(np.concatenate(smoothed)):
        q = alert_quality(smoothed, labels, threshold, gap)
        found = q["segments_found"] / max(1, q["segments"])
        if found >= found_at_least and (best is None or q["normal_alerted"] < best["normal_alerted"]):
            best = {"threshold": float(threshold), "normal_alerted": q["normal_alerted"], "found": found}
    return best


def aucs(scores: list, labels: list) -> tuple[float, float]:
    return float(micro_auc(scores, labels)), float(macro_auc(scores, labels))


def rows_for(s: Setting, training_changes: bool, ablations: tuple[str, ...] = ()) -> list[tuple[str, str, dict]]:
    """(label, recipe whose trained models are scored, score changes to that recipe's score)."""
    changes = recipe_changes("authors", "sdmae")
    sdmae_score = {f: v for p, f, v in changes if p == "score"}
    rows = [("authors' recipe", "authors", {})]
    for part, field, value in changes:
        if part == "score" and field != "test_masks":
            change = {field: value}
            if field == "tokens":  # judging tokens where visible (or hidden) needs the complementary masks
                change["test_masks"] = sdmae_score.get("test_masks", 2)
            rows.append((f"authors + {', '.join(f'{k}={v}' for k, v in change.items())}", "authors", change))
        elif part == "score":
            rows.append((f"authors + {field}={value}", "authors", {field: value}))
        elif training_changes:
            rows.append((f"authors + {part}.{field}={value}", f"authors+{part}.{field}", {}))
    authors_score = {f: v for p, f, v in recipe_changes("sdmae", "authors") if p == "score"}
    rows.append(("authors + sdmae training", "sdmae", authors_score))
    authors_values = {f"{p}.{f}": v for p, f, v in recipe_changes("sdmae", "authors")}
    for name in ablations:
        if name not in authors_values or name.startswith("score."):
            raise SystemExit(f"--ablate {name}: not a training-side field in which the recipes differ; choose from "
                             f"{sorted(k for k in authors_values if not k.startswith('score.'))}")
        rows.append((f"sdmae, {name}={authors_values[name]} (the authors')", f"sdmae-{name}", {}))
    rows.append(("sdmae default", "sdmae", {}))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", help="the campus clip (default: $SDMAE_FOOTAGE or Debian's vtest.avi)")
    ap.add_argument("--skaters", help="the skaters clip (default: $SDMAE_FOOTAGE_SKATERS)")
    ap.add_argument("--scenes", nargs="+", choices=list(SCENES), default=list(SCENES))
    ap.add_argument("--work", default="bench-accuracy", help="dev sets and trained runs (reused)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--batch-size", type=int, help="training batch for every recipe (default: the preset's)")
    ap.add_argument("--training-changes", action="store_true",
                    help="also train the authors' recipe with each training-side deviation alone")
    ap.add_argument("--ablate", nargs="+", default=[], metavar="PART.FIELD",
                    help="also train sdmae with this training-side field at the authors' value, e.g. "
                         "train.zoom_probability")
    ap.add_argument("--small-objects", action="store_true",
                    help="also score each split's runs on a set whose only anomalies are balls thrown fast "
                         "(smaller than a token): what the default misses")
    ap.add_argument("--quick", action="store_true", help="smoke run on the synthetic street (seconds)")
    ap.add_argument("--json", help="write every number here")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    s = Setting(batch_size=args.batch_size)
    given = {"campus": args.footage, "skaters": args.skaters}
    clips = {scene: given[scene] or find_footage(scene) for scene in args.scenes}
    if args.quick:
        s = Setting(preset="tiny", input_size=(64, 96), patch=8, epochs=1, student_epochs=1, sigma=1.0,
                    batch_size=args.batch_size, calibration_fraction=0.25)  # enough frames to hold back
        args.seeds = args.seeds[:1]
        clips = {"synthetic street": make_clip(0, num_frames=160, size=(144, 192))[0]}  # walkers
    for scene in [k for k, v in clips.items() if v is None]:
        print(f"no {scene} clip ({SCENES[scene].description}): pass --{'footage' if scene == 'campus' else scene}, "
              f"set {SCENES[scene].env}, or get it with\n  {SCENES[scene].how_to_get}", file=sys.stderr)
        del clips[scene]
    if not clips:
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = rows_for(s, args.training_changes, tuple(args.ablate))
    print(f"# accuracy on real footage: {', '.join(clips)}")
    print(f"preset {s.preset} at {s.input_size[0]}x{s.input_size[1]} p{s.patch}, {s.epochs} + {s.student_epochs} "
          f"epochs, seeds {args.seeds}, smoothing sigma {s.sigma} frames (centred, normalised), torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads\n")
    results: dict = {"setting": dataclasses.asdict(s), "seeds": args.seeds, "scenes": {}}
    for scene, footage in clips.items():
        results["scenes"][scene] = {}
        for split in SPLITS:
            if args.quick:
                dataset = dict(num_test=2, width=0, fps=10.0)
            else:
                dataset = SCENES[scene].dataset
            data = make_footage_dataset(footage, Path(args.work) / scene / "dev" / f"split{split}", split=split,
                                        seed=0, **dataset)
            plan = event_plan(dataset["num_test"], 0, split)
            results["scenes"][scene][split] = bench_split(scene, split, data, plan, rows, args.seeds,
                                                          Path(args.work) / scene, s, log)
            if args.small_objects:
                balls = make_footage_dataset(footage, Path(args.work) / scene / "dev" / f"split{split}-ball",
                                             split=split, seed=0, kinds=("ball",), **dataset)
                results["scenes"][scene][f"{split}-ball"] = bench_small_objects(
                    scene, split, balls, event_plan(dataset["num_test"], 0, split, ("ball",)), data, args.seeds,
                    Path(args.work) / scene, s, log)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def bench_split(scene: str, split: int, data: Path, plan: list, rows: list, seeds: list[int], work: Path,
                s: Setting, log) -> dict:
    """Train (or reuse) every recipe of ``rows`` on one split, print its tables, return the numbers."""
    records = load_dataset(data, "avenue", "test")
    videos = [r.frames() for r in records]
    labels = [r.labels for r in records]
    frames = TrainFrames.from_dataset(data, "avenue", s.input_size, progress=False)
    recipes = sorted({r for _, r, _ in rows})
    runs = {(r, seed): trained(r, split, seed, data, frames, work, s, log) if r in ("sdmae", "authors")
            else trained_change(r, split, seed, data, frames, work, s, log)
            for r in recipes for seed in seeds}
    table = {"constant": [aucs([smooth_scores(np.zeros(len(v)), s.sigma) for v in videos], labels)],
             "frame difference": [aucs([smooth_scores(frame_difference(v, s.input_size), s.sigma)
                                        for v in videos], labels)]}
    default_scores = [model_scores(runs["sdmae", seed], {}, videos, s.sigma) for seed in seeds]
    for label, recipe, changes in rows:
        table[label] = [aucs(model_scores(runs[recipe, seed], changes, videos, s.sigma), labels)
                        if label != "sdmae default" else aucs(default_scores[i], labels)
                        for i, seed in enumerate(seeds)]
    sweep = {sigma: [aucs(model_scores(runs["sdmae", seed], {}, videos, sigma), labels) for seed in seeds]
             for sigma in (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)}
    n_frames, abnormal = sum(map(len, labels)), sum(int(x.sum()) for x in labels)
    print(f"## {scene}, split {split}: train on the {'first' if split == 0 else 'second'} half ({len(frames)} "
          f"frames), test {len(videos)} videos, {n_frames} frames, {100 * abnormal / n_frames:.0f} % abnormal\n")
    print("| row | micro AUC | macro AUC |")
    print("|---|---:|---:|")
    for label, values in table.items():
        print(f"| {label} | {_fmt([v[0] for v in values])} | {_fmt([v[1] for v in values])} |")
    print("\nsdmae default, smoothing sigma sweep (frames): "
          + ", ".join(f"{sg:g}: {np.mean([v[0] for v in vals]):.3f}" for sg, vals in sweep.items()) + "\n")
    per_video = per_video_table(records, plan, default_scores, labels)
    print("sdmae default per test video (smoothed scores, mean over seeds):\n")
    _print_per_video(per_video)
    alerts = [alert_rows(runs["sdmae", seed], s.sigma, videos, labels, records[0].fps or 25.0) for seed in seeds]
    if all(alerts):
        print(f"sdmae default alerts, threshold calibrated on held-back training frames at "
              f"{100 * alerts[0][0]['false_alarm_rate']:g} % false alarms (mean over seeds):\n")
        print("| gap / min length (s) | normal frames alerted | abnormal segments found | events |")
        print("|---|---:|---:|---:|")
        for i, row in enumerate(alerts[0]):
            per_seed = [a[i] for a in alerts]
            found = np.mean([r["segments_found"] / max(1, r["segments"]) for r in per_seed])
            print(f"| {row['gap_seconds']:g} / {row['min_seconds']:g}{' (default)' if i == 0 else ''} | "
                  f"{100 * np.mean([r['normal_alerted'] for r in per_seed]):.1f} % | {100 * found:.0f} % of "
                  f"{row['segments']} | {np.mean([r['events'] for r in per_seed]):.1f} |")
        oracle = [a[0]["oracle"] for a in alerts]
        print("best threshold chosen with the labels (gap as the default's): "
              f"{np.mean([o['threshold'] for o in oracle]):.3f}, normal frames alerted "
              f"{100 * np.mean([o['normal_alerted'] for o in oracle]):.1f} %, segments found "
              f"{100 * np.mean([o['found'] for o in oracle]):.0f} %\n")
    return {"rows": table, "sigma_sweep": {str(k): v for k, v in sweep.items()}, "frames": n_frames,
            "abnormal": abnormal, "per_video": per_video, "alerts": alerts}


def bench_small_objects(scene: str, split: int, balls: Path, plan: list, data: Path, seeds: list[int], work: Path,
                        s: Setting, log) -> dict:
    """The split's sdmae and authors' runs (trained on ``data``, reused) on the ball set:
    the same test footage, every anomaly a ball thrown fast."""
    records = load_dataset(balls, "avenue", "test")
    videos, labels = [r.frames() for r in records], [r.labels for r in records]
    runs = {(r, seed): trained(r, split, seed, data, None, work, s, log) for r in ("authors", "sdmae") for seed in seeds}
    table = {"frame difference": [aucs([smooth_scores(frame_difference(v, s.input_size), s.sigma) for v in videos],
                                       labels)]}
    default_scores = [model_scores(runs["sdmae", seed], {}, videos, s.sigma) for seed in seeds]
    table["authors' recipe"] = [aucs(model_scores(runs["authors", seed], {}, videos, s.sigma), labels) for seed in seeds]
    table["sdmae default"] = [aucs(x, labels) for x in default_scores]
    alerts = [alert_rows(runs["sdmae", seed], s.sigma, videos, labels, records[0].fps or 25.0)[:1] for seed in seeds]
    n_frames, abnormal = sum(map(len, labels)), sum(int(x.sum()) for x in labels)
    print(f"## {scene}, split {split}, small objects: the same runs, {len(videos)} test videos whose only anomalies "
          f"are balls thrown fast, {n_frames} frames, {100 * abnormal / n_frames:.0f} % abnormal\n")
    print("| row | micro AUC | macro AUC |")
    print("|---|---:|---:|")
    for label, values in table.items():
        print(f"| {label} | {_fmt([v[0] for v in values])} | {_fmt([v[1] for v in values])} |")
    per_video = per_video_table(records, plan, default_scores, labels)
    print("\nsdmae default per test video (smoothed scores, mean over seeds):\n")
    _print_per_video(per_video)
    if all(alerts):
        found = np.mean([a[0]["segments_found"] / max(1, a[0]["segments"]) for a in alerts])
        print(f"sdmae default alerts at its calibrated threshold: {100 * found:.0f} % of {alerts[0][0]['segments']} "
              f"throws found, {100 * np.mean([a[0]['normal_alerted'] for a in alerts]):.1f} % of normal frames "
              "alerted (mean over seeds)\n")
    return {"rows": table, "frames": n_frames, "abnormal": abnormal, "per_video": per_video, "alerts": alerts}


def _print_per_video(per_video: list[dict]) -> None:
    print("| video | events | frames (abnormal) | per-video AUC | normal: mean / p95 | abnormal: mean |")
    print("|---|---|---:|---:|---:|---:|")
    for v in per_video:
        auc = "-" if v["auc"] is None else f"{v['auc']:.3f}"
        normal = "-" if v["normal_mean"] is None else f"{v['normal_mean']:.3f} / {v['normal_p95']:.3f}"
        ab = "-" if v["abnormal_mean"] is None else f"{v['abnormal_mean']:.3f}"
        print(f"| {v['name']} | {v['events']} | {v['frames']} ({v['abnormal']}) | {auc} | {normal} | {ab} |")
    print()


def per_video_table(records: list, plan: list, scores_per_seed: list[list[np.ndarray]], labels: list) -> list[dict]:
    """Per test video: its events, per-video AUC and the level of its normal and abnormal frames
    (each a mean over seeds; None where the video has no frame of that kind)."""
    out = []
    for i, (record, events, y) in enumerate(zip(records, plan, labels)):
        y = np.asarray(y).astype(bool)
        per_seed = [seed_scores[i] for seed_scores in scores_per_seed]

        def mean(f):
            return float(np.mean([f(x) for x in per_seed]))

        both = 0 < y.sum() < len(y)
        out.append({
            "name": record.name,
            "events": ", ".join(f"{kind} ({where})" for kind, where in events),
            "frames": len(y), "abnormal": int(y.sum()),
            "auc": mean(lambda x: roc_auc(x, y)) if both else None,
            "normal_mean": mean(lambda x: x[~y].mean()) if (~y).any() else None,
            "normal_p95": mean(lambda x: np.percentile(x[~y], 95)) if (~y).any() else None,
            "abnormal_mean": mean(lambda x: x[y].mean()) if y.any() else None,
        })
    return out


def trained_change(recipe: str, split: int, seed: int, data: Path, frames, work: Path, s: Setting, log) -> Path:
    """One recipe with one training-side field set to the other's value: "authors+part.field"
    (sdmae's value), or "sdmae-part.field" (the authors' value: an ablation)."""
    base, change = recipe.split("+") if "+" in recipe else recipe.split("-")
    part, field = change.split(".")
    other = "sdmae" if base == "authors" else "authors"
    value = next(v for p, f, v in recipe_changes(base, other) if (p, f) == (part, field))
    cfg = config(base, seed, s)
    cfg = cfg.changed(**{part: {field: value}})
    return train_once(cfg, f"{recipe}-split{split}", data, frames, work, log)


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ({min(values):.3f}-{max(values):.3f})"


if __name__ == "__main__":
    sys.exit(main())
