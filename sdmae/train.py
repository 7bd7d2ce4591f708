"""Two-stage training: the teacher, then the self-distilled student.

Stage 1 (teacher): encoder + teacher decoder learn to reconstruct frame t and
an anomaly-map channel from frames t-3, t, t+3 with half the tokens hidden;
the loss is weighted by motion (:func:`sdmae.kernels.prepare`), and a quarter
of the samples carry a pasted moving object whose mask is added to the
gradients before weighting and is the 4th target channel.
Stage 2 (student): encoder and teacher frozen, in eval mode; the student head
learns to reproduce the teacher's output, motion-weighted.

Every sample's randomness (anomaly pasting, token mask) is a function of
(seed, stage, epoch, sample index), so an interrupted run resumed from its
last checkpoint, or the same run sharded over torchrun processes, trains the
same model.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from . import distributed as dist
from .checkpoint import CheckpointError, build_model, load_checkpoint, load_model, save_checkpoint
from .config import Config
from .data import ObjectBank
from .data.io import atomic_write
from .data.training.samples import TrainFrames, TrainSamples, normal_runs
from .errors import SdmaeError
from .model import SDMAE, patchify, seeded_masks, weighted_loss

# re-exported: training code and older scripts import these from here
__all__ = ["STAGES", "CheckpointError", "TrainFrames", "TrainResult", "TrainSamples", "build_model",
           "learning_rate", "load_checkpoint", "load_model", "normal_runs", "sample_masks", "save_checkpoint",
           "train"]

STAGES = ("teacher", "student")


# --------------------------------------------------------------------------- schedule and masks


def learning_rate(cfg: Config, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Linear warm-up over ``warmup_epochs``, then cosine decay to 1 % of the peak."""
    tc = cfg.train
    warmup = tc.warmup_epochs * steps_per_epoch
    total = max(1, epochs * steps_per_epoch)
    if step < warmup:
        return tc.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1.0, total - warmup))
    return tc.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def epoch_key(stage: int, epoch: int) -> int:
    """The one number per (stage, epoch) that keys every random draw of that epoch: the
    data order, each sample's pasted anomaly and speed-up, and its mask (all with
    cfg.train.seed), so a resumed or sharded run draws what an uninterrupted one does."""
    return 1000 * stage + epoch


def sample_masks(cfg: Config, indices: torch.Tensor, stage: int, epoch: int, device: torch.device):
    """Training masks keyed by sample index: the same for a sample on any rank or batch."""
    return seeded_masks(indices, cfg.model.num_tokens, cfg.model.mask_ratio,
                        seed=cfg.train.seed, index=epoch_key(stage, epoch) + 1, device=device)


# --------------------------------------------------------------------------- training loop


@dataclass
class TrainResult:
    run_dir: Path
    teacher_losses: list[float]
    student_losses: list[float]


def train(cfg: Config, data: str | os.PathLike, layout: str | None, run_dir: str | os.PathLike, *,
          device: str = "cpu", resume: bool = False, objects: str | os.PathLike | None = None,
          progress: bool = True, frames: TrainFrames | None = None,
          cache_dir: str | os.PathLike | None = None) -> TrainResult:
    """Train both stages on the training split of ``data``; write checkpoints into ``run_dir``.

    The training frames come from ``frames`` when given, else from the dataset's
    frame cache in ``cache_dir`` (default: :func:`sdmae.data.training.frame_cache.default_cache_dir`),
    decoded into it on first use by each node's first process while the others wait.

    Under torchrun (``WORLD_SIZE`` > 1) every rank trains on its shard of each
    epoch with DistributedDataParallel and rank 0 alone writes. ``cfg.train.batch_size``
    is the global batch, split evenly over the ranks.
    """
    run_dir = Path(run_dir)
    if resume:
        cfg = _keep_run_settings(run_dir, cfg)
    ctx = dist.setup(device)
    torch.manual_seed(cfg.train.seed)  # nothing should draw from it; belt and braces for third-party code
    created = not run_dir.exists()
    if ctx.is_main:
        # validate before writing anything: a refused command leaves the run as it was
        if resume:
            _check_resumable(run_dir, cfg)
        elif any((run_dir / f"{s}.pt").exists() for s in STAGES):
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                                  "another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        _remove_leftover_temporaries(run_dir)
        with atomic_write(run_dir / "config.json") as tmp:
            tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
    dist.barrier()
    try:
        if frames is None:
            frames = TrainFrames.from_cache(data, layout, cfg.model.input_size, cache_dir,
                                            build=ctx.local_rank == 0, progress=progress and ctx.is_main)
            dist.barrier()
        held = frames.hold_back(cfg.train.calibration_fraction)
        result = _train_stages(cfg, ctx, run_dir, resume, objects, progress, frames)
        if ctx.is_main:
            _calibrate(cfg, run_dir, frames, held, ctx.device, progress)
        return result
    except BaseException:
        if ctx.is_main and created:
            _remove_if_no_checkpoint(run_dir)
        raise


def _calibrate(cfg: Config, run_dir: Path, frames: TrainFrames, held: list, device: torch.device,
               progress: bool) -> None:
    """Score the held-back training frames into RUN/calibration.json, with the default and the
    fast score (once: a resumed run, or one calibrated since with ``sdmae calibrate``, keeps
    its file)."""
    from .calibration import CALIBRATION_FILE, calibrate_run
    from .detector import Detector

    if cfg.train.calibration_fraction == 0 or (run_dir / CALIBRATION_FILE).exists():
        return
    if not held:
        warnings.warn(f"{run_dir}: the training videos are too short to hold back frames for calibration, so "
                      "the run has no alert threshold; give it one with sdmae calibrate on other normal footage")
        return
    clips = [frames.held_frames(*stretch) for stretch in held]
    source = (f"held-back training footage: {sum(b - a for _, a, b in held)} frames of {len(held)} of "
              f"{len(frames.videos)} training videos")
    calibration = calibrate_run(Detector.load(run_dir, device=str(device)), run_dir, clips, source,
                                progress=progress)[0]
    shortfall = calibration.shortfall(cfg.alert.false_alarm_rate)
    if shortfall:
        warnings.warn(f"{run_dir}: {shortfall}")


@dataclass
class _Run:
    """What every stage of one training run shares."""

    cfg: Config
    model: SDMAE
    dataset: TrainSamples
    ctx: dist.Context
    run_dir: Path
    resume: bool
    progress: bool

    @property
    def log_path(self) -> Path:
        return self.run_dir / "log.jsonl"


@dataclass
class _Stage:
    name: str  # "teacher" or "student"
    index: int  # 0, 1: keys the stage's random draws (epoch_key)
    epochs: int

    @classmethod
    def all(cls, cfg: Config) -> list["_Stage"]:
        return [cls("teacher", 0, cfg.train.epochs), cls("student", 1, cfg.train.student_epochs)]


def _train_stages(cfg: Config, ctx: dist.Context, run_dir: Path, resume: bool, objects, progress: bool,
                  frames: TrainFrames) -> TrainResult:
    bank = None
    if cfg.train.anomaly_probability > 0:
        bank = ObjectBank.from_path(objects) if objects else ObjectBank.builtin()
    run = _Run(cfg, build_model(cfg).to(ctx.device), TrainSamples(frames, cfg, bank), ctx, run_dir, resume,
               progress)
    losses = {stage.name: _train_stage(run, stage) for stage in _Stage.all(cfg)}
    dist.barrier()
    return TrainResult(run_dir, losses["teacher"], losses["student"])


def _stage_optimizer(run: _Run, stage: _Stage) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
    """The stage's trainable parameters (the others frozen) and their AdamW."""
    model, tc = run.model, run.cfg.train
    if stage.name == "student":
        model.freeze_teacher()
        params = list(model.student_parameters())
    else:
        for p in model.student_parameters():  # unused in stage 1: keep DDP from waiting for their gradients
            p.requires_grad_(False)
        params = list(model.teacher_parameters())
    for p in params:
        p.requires_grad_(True)
    # no weight decay on norms and biases (1-d parameters), as MAE and the authors
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": tc.weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return params, torch.optim.AdamW(groups, lr=tc.lr, betas=tc.adam_betas)


def _resume_stage(run: _Run, stage: _Stage, optimizer: torch.optim.Optimizer) -> tuple[int, bool]:
    """Load the stage's checkpoint when resuming -> (first epoch to train, stage done)."""
    ckpt_path = run.run_dir / f"{stage.name}.pt"
    start_epoch, done = 0, False
    if run.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, run.cfg)
        run.model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        start_epoch, done = state["epoch"] + 1, state["done"]
    elif run.resume and stage.name == "teacher" and (run.run_dir / "student.pt").exists():
        raise FileNotFoundError(f"{run.run_dir} has student.pt but no teacher.pt; cannot resume")
    if run.ctx.is_main and run.resume:
        _trim_log(run.log_path, stage.name, start_epoch, done)
    return start_epoch, done


def _stage_loader(run: _Run) -> tuple[DataLoader, DistributedSampler]:
    """This rank's shard of every epoch, in batches of the global batch / world size."""
    world, batch = run.ctx.world_size, run.cfg.train.batch_size
    if batch % world:
        raise SdmaeError(f"batch_size {batch} must be divisible by the number of processes {world}")
    sampler = DistributedSampler(run.dataset, num_replicas=world, rank=run.ctx.rank, shuffle=True,
                                 seed=run.cfg.train.seed, drop_last=True)
    loader = DataLoader(run.dataset, batch_size=batch // world, sampler=sampler,
                        num_workers=run.cfg.train.num_workers, drop_last=True, persistent_workers=False)
    if len(loader) == 0:
        raise SdmaeError(f"{len(run.dataset)} training frames are fewer than one batch of {batch}; "
                         "lower batch_size or add training videos")
    return loader, sampler


def _train_stage(run: _Run, stage: _Stage) -> list[float]:
    cfg, model, dataset, ctx = run.cfg, run.model, run.dataset, run.ctx
    name, stage_index, epochs = stage.name, stage.index, stage.epochs
    ckpt_path = run.run_dir / f"{name}.pt"
    params, optimizer = _stage_optimizer(run, stage)
    start_epoch, done = _resume_stage(run, stage, optimizer)
    loader, sampler = _stage_loader(run)
    steps_per_epoch, batch = len(loader), cfg.train.batch_size
    net = ctx.wrap(model)
    epoch_losses: list[float] = []
    for epoch in range(start_epoch, epochs if not done else start_epoch):
        model.train()
        sampler.set_epoch(epoch_key(stage_index, epoch))
        dataset.set_epoch(epoch_key(stage_index, epoch))
        # Pasted anomalies teach the teacher to overlook them; the student sees normal
        # data only, so that it imitates the teacher where the data is normal.
        dataset.paste = name == "teacher"
        started, total, count = time.perf_counter(), 0.0, 0
        bar = _bar(steps_per_epoch, f"{name} {epoch + 1}/{epochs}", run.progress and ctx.is_main)
        for step, batch_data in enumerate(loader):
            lr = learning_rate(cfg, epoch * steps_per_epoch + step, steps_per_epoch, epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = _step_loss(cfg, net, batch_data, name, stage_index, epoch, ctx.device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            value = loss.item()
            if not math.isfinite(value) and ctx.world_size == 1:
                # stop at once; under DDP the other ranks would wait for this one's
                # gradients, so there all ranks stop together at the epoch's end
                _diverged(name, epoch, epochs, f"the loss is {value} at step {step + 1}", ckpt_path)
            optimizer.step()
            total += value
            count += 1
            if bar is not None:
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{lr:.1e}")
                bar.update()
        if bar is not None:
            bar.close()
        mean_loss = dist.mean(total / max(count, 1), ctx)
        if not math.isfinite(mean_loss):
            _diverged(name, epoch, epochs, f"the epoch's mean loss is {mean_loss}", ckpt_path)
        if not all(torch.isfinite(p).all() for p in params):  # a finite loss, then a step to inf
            _diverged(name, epoch, epochs, "the weights are no longer finite", ckpt_path)
        epoch_losses.append(mean_loss)
        if ctx.is_main:
            # the log line first: a kill before the checkpoint's rename leaves a line
            # that the resumed run trims and writes again, never a missing one
            with open(run.log_path, "a") as f:
                f.write(json.dumps({"stage": name, "epoch": epoch + 1, "epochs": epochs, "loss": mean_loss,
                                    "lr": lr, "seconds": round(time.perf_counter() - started, 3),
                                    "frames": steps_per_epoch * batch}) + "\n")
            save_checkpoint(ckpt_path, stage=name, cfg=cfg, model=model, optimizer=optimizer, epoch=epoch,
                            done=epoch + 1 == epochs)
        dist.barrier()
    if epochs == 0 and ctx.is_main:
        save_checkpoint(ckpt_path, stage=name, cfg=cfg, model=model, optimizer=optimizer, epoch=-1, done=True)
    return epoch_losses


def _step_loss(cfg: Config, net: torch.nn.Module, batch: dict[str, torch.Tensor], stage: str, stage_index: int,
               epoch: int, device: torch.device) -> torch.Tensor:
    inputs = batch["inputs"].to(device, non_blocking=True)
    weights = batch["weights"].to(device, non_blocking=True)
    ids_keep, ids_restore, mask = sample_masks(cfg, batch["index"], stage_index, epoch, device)
    out = net(inputs, ids_keep, ids_restore, student=stage == "student")
    if stage == "student":
        if cfg.train.student_loss == "masked":  # plain MSE over the masked tokens
            return weighted_loss(out.student, out.teacher.detach(), mask / mask.sum(dim=1, keepdim=True))
        return weighted_loss(out.student, out.teacher.detach(), weights)
    target = patchify(batch["target"].to(device, non_blocking=True), cfg.model.patch)  # (N, L, p*p*4)
    loss = weighted_loss(out.teacher, target, weights)
    if out.cls_logit is not None:
        anomaly = batch["anomaly"].to(device)
        loss = loss + cfg.train.cls_loss_weight * F.binary_cross_entropy_with_logits(out.cls_logit, anomaly)
    return loss


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def _trim_log(log_path: Path, stage: str, start_epoch: int, stage_done: bool) -> None:
    """Drop the log lines of epochs that the resumed run trains again: this stage's
    epochs after its checkpoint and, when this stage is to train on, every later
    stage's lines (a finished stage keeps the lines of the stages after it)."""
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        later_stage = STAGES.index(entry["stage"]) > STAGES.index(stage)
        retrained = (entry["stage"] == stage and entry["epoch"] > start_epoch) or (later_stage and not stage_done)
        if not retrained:
            keep.append(line)
    with atomic_write(log_path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))


class TrainingDiverged(SdmaeError):
    """Training produced a non-finite loss or weights (the message names stage and epoch)."""


def _diverged(stage: str, epoch: int, epochs: int, what: str, ckpt_path: Path) -> None:
    kept = (f"{ckpt_path} still holds the last finite epoch" if ckpt_path.exists()
            else f"no {stage} checkpoint was written")
    raise TrainingDiverged(f"training diverged in the {stage} stage, epoch {epoch + 1}/{epochs}: {what}; {kept}. "
                           "Lower --lr and continue with --resume, or start again")


# What a resumed run may change: the speed, and the learning rate (the way out of a
# divergence; log.jsonl records each epoch's). Everything else must match the run's.
_FREE_ON_RESUME = {("train", "num_workers"), ("train", "lr")}


# Settings that no command-line option sets: a resumed run keeps its own, so that a run
# started before they existed (and so without them) can be resumed by a newer sdmae.
_RUN_KEEPS_ON_RESUME = {("train", "zoom_probability"), ("train", "zoom_max"), ("train", "calibration_fraction")}


def _keep_run_settings(run_dir: Path, cfg: Config) -> Config:
    """``cfg`` with the run's own values of :data:`_RUN_KEEPS_ON_RESUME` (as is when the run
    has no readable config.json: :func:`_check_resumable` then says so)."""
    try:
        saved = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return cfg
    kept = {name: getattr(saved.train, name) for part, name in _RUN_KEEPS_ON_RESUME if part == "train"}
    return cfg.changed(train=kept)


def _check_resumable(run_dir: Path, cfg: Config) -> None:
    """Refuse a --resume whose settings differ from the run's own (config.json)."""
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return  # a run killed before its config was written: the checkpoints are checked on load
    try:
        saved = Config.from_dict(json.loads(saved_path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise SdmaeError(f"{saved_path} cannot be read ({exc}); cannot resume this run") from None
    mine, theirs = cfg.to_dict(), saved.to_dict()
    differ = [f"{part}.{name}: the run has {theirs[part][name]!r}, this command {mine[part][name]!r}"
              for part in ("model", "train") for name in mine[part]
              if (part, name) not in _FREE_ON_RESUME and mine[part][name] != theirs[part][name]]
    if mine["preset"] != theirs["preset"]:
        differ.insert(0, f"preset: the run has {theirs['preset']!r}, this command {mine['preset']!r}")
    if differ:
        raise SdmaeError(f"--resume continues {run_dir} exactly as it was configured, and this command differs "
                         f"({'; '.join(differ)}). Repeat the run's options, or train into another --out")


def _remove_leftover_temporaries(run_dir: Path) -> None:
    """Hidden temporary files of writes that a kill interrupted (see atomic_write)."""
    for name in (*STAGES, "config", "log", "calibration"):
        for leftover in run_dir.glob(f".{name}.*.tmp.*"):
            leftover.unlink(missing_ok=True)


def _remove_if_no_checkpoint(run_dir: Path) -> None:
    """After a failed first start, remove the run directory this call created (our files only)."""
    if any((run_dir / f"{s}.pt").exists() for s in STAGES):
        return
    for name in ("config.json", "log.jsonl"):
        (run_dir / name).unlink(missing_ok=True)
    _remove_leftover_temporaries(run_dir)
    try:
        run_dir.rmdir()
    except OSError:  # something else lives there: leave it
        pass
