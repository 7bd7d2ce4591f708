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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from . import distributed as dist
from . import kernels
from .config import Config
from .data import ObjectBank, load_dataset, maybe_paste
from .data._io import atomic_write
from .model import SDMAE, patchify, seeded_masks, weighted_loss

CHECKPOINT_FORMAT = "sdmae-checkpoint-v1"
STAGES = ("teacher", "student")


class CheckpointError(ValueError):
    """A file that is not a usable sdmae checkpoint (the message names it)."""


# --------------------------------------------------------------------------- data


class TrainFrames:
    """Decoded training videos held as uint8, each frame decoded once.

    Frames larger than the model input are resized to it on load (bilinear,
    half-pixel centres, the convention of :func:`sdmae.kernels.prepare`), so a
    long dataset fits in memory; the motion gradients are then computed at the
    model size, as at test time.
    """

    def __init__(self, videos: Sequence[np.ndarray]):
        self.videos = list(videos)  # each (T, H, W, 3) uint8
        self.index = np.array([(v, t) for v, clip in enumerate(self.videos) for t in range(len(clip))],
                              dtype=np.int64).reshape(-1, 2)  # (S, 2) sample -> (video, frame)

    @classmethod
    def from_dataset(cls, root: str | os.PathLike, layout: str | None, size: tuple[int, int],
                     progress: bool = True) -> "TrainFrames":
        """Decode a dataset's training split at (at most) model size.

        Training is one-class: where a training video has frame labels (UBnormal's
        abnormal training videos), only its runs of normal frames are kept, each
        as a video of its own, so no abnormal frame is ever a neighbour either.
        """
        records = load_dataset(root, layout, split="train")
        videos = []
        for rec in _progress(records, progress, "decoding training videos"):
            chunks, chunk = [], []
            for frame in rec.iter_frames():
                chunk.append(frame)
                if len(chunk) == 64:  # resize in batches: one interpolate call per 64 frames
                    chunks.append(_shrink(np.stack(chunk), size))
                    chunk = []
            if chunk:
                chunks.append(_shrink(np.stack(chunk), size))
            if not chunks:
                raise ValueError(f"training video {rec.source} has no frames")
            video = np.concatenate(chunks)
            if rec.labels is None or not rec.labels.any():
                videos.append(video)
            else:
                videos += [video[a:b] for a, b in normal_runs(rec.labels)]
        if not videos:
            raise ValueError(f"{root}: the training split has no normal frames")
        return cls(videos)

    def __len__(self) -> int:
        return len(self.index)


def normal_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(T,) 0/1 frame labels -> [start, stop) of every maximal run of normal (0) frames."""
    normal = np.concatenate([[0], (np.asarray(labels) == 0).astype(np.int8), [0]])
    edges = np.diff(normal)
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))


def _shrink(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same, at most the model size (half-pixel bilinear)."""
    if frames.shape[1] * frames.shape[2] <= size[0] * size[1]:
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).contiguous().numpy()


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


class TrainSamples(Dataset):
    """Sample i: frame t of one training video with its neighbours, ready for the model.

    Returns a dict of tensors: ``inputs`` (9, h, w), ``target`` (4, h, w) (clean
    frame t in [-1, 1] + anomaly mask), ``weights`` (L,), ``anomaly`` () 0/1.
    """

    def __init__(self, frames: TrainFrames, cfg: Config, bank: ObjectBank | None, anomalies: bool = True):
        self.frames, self.cfg, self.bank = frames, cfg, bank
        self.anomalies = anomalies and bank is not None and cfg.train.anomaly_probability > 0
        self.paste = True  # switched off for the student stage
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        m, tc = self.cfg.model, self.cfg.train
        v, t = self.frames.index[i]
        video = self.frames.videos[v]
        k = tc.frame_offset
        stride = 1
        if self.paste and tc.speed_probability > 0:
            rng = np.random.default_rng([tc.seed, self.epoch, int(i), 1])
            if rng.random() < tc.speed_probability:
                stride = int(rng.choice(tc.speed_factors))
        # (2k+1, H, W, 3): frames t-k..t+k, or every stride-th frame around t when sped up
        clip = video[np.clip(t + stride * np.arange(-k, k + 1), 0, len(video) - 1)]
        mask = _moving_at_centre(clip, k) if stride > 1 else np.zeros(clip.shape[1:3], np.float32)
        pasted = stride > 1
        if self.anomalies and self.paste:
            rng = np.random.default_rng([tc.seed, self.epoch, int(i)])
            style = dict(grey=True, blur=tc.object_blur, max_area=tc.object_max_area) \
                if tc.object_style == "grey" else {}
            clip_in, object_mask, with_object = maybe_paste(clip, self.bank, rng,
                                                            probability=tc.anomaly_probability, **style)
            mask, pasted = np.maximum(mask, object_mask), pasted or with_object
        else:
            clip_in = clip
        prep = kernels.prepare(clip_in, [k], m.input_size, m.patch, k, tc.grad_step)
        inputs, gradients = prep.inputs[0], prep.gradients[0]
        if pasted:
            # Overlook the anomaly: the target is the clean frame; the pasted object
            # weighs heavily in the loss through the gradients under it.
            clean = kernels.prepare(clip, [k], m.input_size, m.patch, k, tc.grad_step).inputs[0, 3:6]
            mask_small = _resize_mask(mask, m.input_size)
            if tc.anomaly_gradient == "floor":  # as strong as the strongest motion in the frame
                gradients = np.maximum(gradients, max(128.0, float(gradients.max())) * mask_small[None])
            else:
                gradients = gradients + 255.0 * mask_small[None]
            weights = kernels.token_weights(np.ascontiguousarray(gradients[None], np.float32), m.patch)[0]
        else:
            clean = inputs[3:6]
            mask_small = np.zeros(m.input_size, np.float32)
            weights = prep.weights[0]
        normal = m.map_normal  # -1 (signed) or 0 (unit) where nothing was pasted
        target_map = normal + (1.0 - normal) * mask_small
        target = np.concatenate([clean, target_map[None].astype(np.float32)], axis=0)  # (4, h, w)
        return {"inputs": torch.from_numpy(inputs), "target": torch.from_numpy(target),
                "weights": torch.from_numpy(weights), "anomaly": torch.tensor(float(pasted)),
                "index": torch.tensor(int(i))}


def _moving_at_centre(clip: np.ndarray, k: int, threshold: float = 20.0) -> np.ndarray:
    """Where frame k of a sped-up clip differs from both its neighbours (the movers
    at their frame-k positions, not their ghosts) -> (H, W) float32 0/1 mask."""
    from scipy import ndimage as ndi

    f = clip.astype(np.int16)
    before = np.abs(f[k] - f[k - 1]).max(axis=-1)
    after = np.abs(f[k] - f[k + 1]).max(axis=-1)
    moving = ndi.binary_opening(np.minimum(before, after) > threshold)
    return ndi.binary_dilation(moving, iterations=1).astype(np.float32)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 in [0, 1] -> (h, w) float32, half-pixel bilinear."""
    if mask.shape == tuple(size):
        return mask.astype(np.float32)
    x = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=size, mode="bilinear",
                      align_corners=False)
    return x[0, 0].numpy()


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


def sample_masks(cfg: Config, indices: torch.Tensor, stage: int, epoch: int, device: torch.device):
    """Training masks keyed by sample index: the same for a sample on any rank or batch."""
    return seeded_masks(indices, cfg.model.num_tokens, cfg.model.mask_ratio,
                        seed=cfg.train.seed, index=1000 * stage + epoch + 1, device=device)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, *, stage: str, cfg: Config, model: SDMAE,
                    optimizer: torch.optim.Optimizer | None, epoch: int, done: bool) -> None:
    """One file per stage, written atomically (temp file + rename)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "stage": stage,
        "config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "done": bool(done),
    }
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, expect_config: Config | None = None) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check that it is one.

    Raises CheckpointError naming the file for a missing, truncated or foreign
    file, and for a checkpoint of another preset than ``expect_config``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle of arbitrary objects, not a torch file...
        raise CheckpointError(f"{path} is not a readable sdmae checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an sdmae checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    try:
        state["config"] = Config.from_dict(state["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its config cannot be read ({exc})") from None
    if expect_config is not None and state["config"].model != expect_config.model:
        raise CheckpointError(f"{path} holds a model of preset {state['config'].preset!r} "
                              f"({state['config'].model}) that differs from this run's {expect_config.preset!r} "
                              f"({expect_config.model})")
    return state


def build_model(cfg: Config) -> SDMAE:
    return SDMAE(cfg.model, generator=torch.Generator().manual_seed(cfg.train.seed))


def load_model(state: dict[str, Any], path: str | os.PathLike = "checkpoint") -> SDMAE:
    """A model with a checkpoint's weights (a key mismatch is a CheckpointError)."""
    model = build_model(state["config"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model of its config ({exc})") from None
    return model


# --------------------------------------------------------------------------- training loop


@dataclass
class TrainResult:
    run_dir: Path
    teacher_losses: list[float]
    student_losses: list[float]


def train(cfg: Config, data: str | os.PathLike, layout: str | None, run_dir: str | os.PathLike, *,
          device: str = "cpu", resume: bool = False, objects: str | os.PathLike | None = None,
          progress: bool = True, frames: TrainFrames | None = None) -> TrainResult:
    """Train both stages on the training split of ``data``; write checkpoints into ``run_dir``.

    Under torchrun (``WORLD_SIZE`` > 1) every rank trains on its shard of each
    epoch with DistributedDataParallel and rank 0 alone writes. ``cfg.train.batch_size``
    is the global batch, split evenly over the ranks.
    """
    run_dir = Path(run_dir)
    ctx = dist.setup(device)
    torch.manual_seed(cfg.train.seed)  # nothing should draw from it; belt and braces for third-party code
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume and any((run_dir / f"{s}.pt").exists() for s in STAGES):
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose "
                                  "another --out")
        with atomic_write(run_dir / "config.json") as tmp:
            tmp.write_text(json.dumps(cfg.to_dict(), indent=2))
    dist.barrier()

    if frames is None:
        frames = TrainFrames.from_dataset(data, layout, cfg.model.input_size, progress and ctx.is_main)
    bank = None
    if cfg.train.anomaly_probability > 0:
        bank = ObjectBank.from_path(objects) if objects else ObjectBank.builtin()
    dataset = TrainSamples(frames, cfg, bank)

    model = build_model(cfg).to(ctx.device)
    log_path = run_dir / "log.jsonl"
    losses: dict[str, list[float]] = {}
    for stage_index, stage in enumerate(STAGES):
        epochs = cfg.train.epochs if stage == "teacher" else cfg.train.student_epochs
        losses[stage] = _train_stage(cfg, model, dataset, stage, stage_index, epochs, run_dir, log_path, ctx,
                                     resume, progress)
    dist.barrier()
    return TrainResult(run_dir, losses["teacher"], losses["student"])


def _train_stage(cfg: Config, model: SDMAE, dataset: TrainSamples, stage: str, stage_index: int, epochs: int,
                 run_dir: Path, log_path: Path, ctx: dist.Context, resume: bool, progress: bool) -> list[float]:
    ckpt_path = run_dir / f"{stage}.pt"
    if stage == "student":
        model.freeze_teacher()
        params = list(model.student_parameters())
    else:
        for p in model.student_parameters():  # unused in stage 1: keep DDP from waiting for their gradients
            p.requires_grad_(False)
        params = list(model.teacher_parameters())
    for p in params:
        p.requires_grad_(True)
    # no weight decay on norms and biases (1-d parameters), as MAE and the authors
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.train.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.train.lr, betas=cfg.train.adam_betas)

    start_epoch, done = 0, False
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, cfg)
        model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        start_epoch, done = state["epoch"] + 1, state["done"]
    elif resume and stage == "teacher" and (run_dir / "student.pt").exists():
        raise FileNotFoundError(f"{run_dir} has student.pt but no teacher.pt; cannot resume")
    if ctx.is_main and resume:
        _trim_log(log_path, stage, start_epoch)

    world, batch = ctx.world_size, cfg.train.batch_size
    if batch % world:
        raise ValueError(f"batch_size {batch} must be divisible by the number of processes {world}")
    sampler = DistributedSampler(dataset, num_replicas=world, rank=ctx.rank, shuffle=True,
                                 seed=cfg.train.seed + 7919 * stage_index, drop_last=True)
    loader = DataLoader(dataset, batch_size=batch // world, sampler=sampler, num_workers=cfg.train.num_workers,
                        drop_last=True, persistent_workers=False)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(dataset)} training frames are fewer than one batch of {batch}; "
                         "lower batch_size or add training videos")
    net = ctx.wrap(model)
    epoch_losses: list[float] = []
    for epoch in range(start_epoch, epochs if not done else start_epoch):
        model.train()
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch + 1000 * stage_index)
        # Pasted anomalies teach the teacher to overlook them; the student sees normal
        # data only, so that it imitates the teacher where the data is normal.
        dataset.paste = stage == "teacher"
        started, total, count = time.perf_counter(), 0.0, 0
        bar = _bar(steps_per_epoch, f"{stage} {epoch + 1}/{epochs}", progress and ctx.is_main)
        for step, batch_data in enumerate(loader):
            lr = learning_rate(cfg, epoch * steps_per_epoch + step, steps_per_epoch, epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = _step_loss(cfg, net, batch_data, stage, stage_index, epoch, ctx.device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            count += 1
            if bar is not None:
                bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{lr:.1e}")
                bar.update()
        if bar is not None:
            bar.close()
        mean_loss = dist.mean(total / max(count, 1), ctx)
        epoch_losses.append(mean_loss)
        if ctx.is_main:
            last = epoch + 1 == epochs
            save_checkpoint(ckpt_path, stage=stage, cfg=cfg, model=model, optimizer=optimizer, epoch=epoch,
                            done=last)
            with open(log_path, "a") as f:
                f.write(json.dumps({"stage": stage, "epoch": epoch + 1, "epochs": epochs, "loss": mean_loss,
                                    "lr": lr, "seconds": round(time.perf_counter() - started, 3),
                                    "frames": steps_per_epoch * batch}) + "\n")
        dist.barrier()
    if epochs == 0 and ctx.is_main:
        save_checkpoint(ckpt_path, stage=stage, cfg=cfg, model=model, optimizer=optimizer, epoch=-1, done=True)
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


def _trim_log(log_path: Path, stage: str, start_epoch: int) -> None:
    """Drop log lines of epochs that the resumed run will train again."""
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        later_stage = STAGES.index(entry["stage"]) > STAGES.index(stage)
        if not later_stage and not (entry["stage"] == stage and entry["epoch"] > start_epoch):
            keep.append(line)
    with atomic_write(log_path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))
