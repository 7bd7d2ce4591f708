"""Training throughput (frames/s) of both stages, on random inputs.

One step = forward + weighted loss + backward + AdamW update, exactly the
pieces ``sdmae.train`` uses (``build_model``, ``sample_masks``/seeded masks,
``weighted_loss``, ``freeze_teacher``). Stage 1 (teacher) trains encoder and
teacher decoder; stage 2 (student) freezes them (eval mode) and trains the
student head only, the teacher forward still running every step. Data loading
is not included (random inputs), so these are upper bounds for ``sdmae train``.

``--loading`` adds teacher steps fed by ``sdmae.train``'s own data path
(``TrainSamples`` through a ``DataLoader``: frame reads, pasted anomalies,
``prepare``) on a small synthetic dataset, from frames held in memory and from
the warm disk cache, timed round-robin: the cache must cost no throughput.

Checks first: losses are finite, and stage 2 leaves every teacher parameter
and BatchNorm statistic unchanged.

Run: python benchmarks/bench_train.py [--quick] [--presets tiny,avenue] [--batch N]
     [--steps S] [--device cpu|cuda] [--bf16] [--loading] [--workers W] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import torch
from _harness import device_and_threads, synchronizer, timeit, timeit_interleaved

from sdmae.config import get_preset
from sdmae.model import patchify, weighted_loss
from sdmae.train import _step_loss, build_model, sample_masks

DEFAULT_BATCH = {"tiny": 32, "avenue": 4, "shanghaitech": 8, "ubnormal": 8, "ped2": 4}


def make_batch(cfg, batch, device, g):
    m = cfg.model
    x = (torch.rand(batch, m.in_chans, *m.input_size, generator=g) * 2 - 1).to(device)
    target = (torch.rand(batch, m.out_chans, *m.input_size, generator=g) * 2 - 1).to(device)
    weights = torch.softmax(torch.randn(batch, m.num_tokens, generator=g), 1).to(device)
    return x, patchify(target, m.patch), weights


def bench_stage(cfg, model, stage, batch, steps, warmup, device, dtype=None):
    g = torch.Generator().manual_seed(1)
    x, target, weights = make_batch(cfg, batch, device, g)
    idx = torch.arange(batch)
    if stage == "teacher":
        model.train()
        params = [p for p in model.teacher_parameters()]
    else:
        model.freeze_teacher()
        params = list(model.student_parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    sync = synchronizer(device)
    stage_index = 0 if stage == "teacher" else 1
    frozen = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("student.")}

    def step(epoch):
        ids_keep, ids_restore, _ = sample_masks(cfg, idx, stage_index, epoch, device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(x, ids_keep, ids_restore, student=stage == "student")
        if stage == "student":
            loss = weighted_loss(out.student.float(), out.teacher.detach().float(), weights)
        else:
            loss = weighted_loss(out.teacher.float(), target, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    losses = []
    med, (lo, hi), _ = timeit(lambda: losses.append(step(len(losses))), steps, warmup=warmup, sync=sync)
    if not all(map(lambda v: v == v and abs(v) != float("inf"), losses)):
        raise SystemExit(f"{stage}: non-finite loss {losses}")
    if stage == "student":
        for k, v in model.state_dict().items():
            if k in frozen and not torch.equal(frozen[k], v):
                raise SystemExit(f"student stage changed frozen teacher state {k}")
    return dict(stage=stage, batch=batch, ms=1e3 * med, min_ms=1e3 * lo, max_ms=1e3 * hi,
                fps=batch / med, loss_first=losses[0], loss_last=losses[-1])


def bench_loading(name, batch, steps, warmup, workers, device):
    """Teacher steps fed from memory and from the warm frame cache, round-robin -> {source: row}."""
    from torch.utils.data import DataLoader

    from sdmae.data import ObjectBank, make_dataset
    from sdmae.train import TrainFrames, TrainSamples

    cfg = get_preset(name)
    size = cfg.model.input_size
    with tempfile.TemporaryDirectory() as tmp:
        frames = max(48, (steps + warmup) * batch // 2 + 8)  # two videos: every timed step reads new samples
        data = make_dataset(Path(tmp) / "data", layout="avenue", seed=1, num_train=2, num_test=1,
                            num_frames=frames, size=size)
        sources = {"memory": TrainFrames.from_dataset(data, "avenue", size, progress=False),
                   "cache": TrainFrames.from_cache(data, "avenue", size, Path(tmp) / "cache", progress=False)}
        model = build_model(cfg).to(device).train()
        optimizer = torch.optim.AdamW(list(model.teacher_parameters()), lr=1e-4)
        bank = ObjectBank.builtin()
        batches = {}
        for source, train_frames in sources.items():
            loader = DataLoader(TrainSamples(train_frames, cfg, bank), batch_size=batch, shuffle=True,
                                num_workers=workers, drop_last=True, persistent_workers=workers > 0,
                                generator=torch.Generator().manual_seed(0))
            batches[source] = itertools.chain.from_iterable(itertools.repeat(loader))

        def step(source):
            loss = _step_loss(cfg, model, next(batches[source]), "teacher", 0, 0, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        timings = timeit_interleaved({s: (lambda s=s: step(s)) for s in sources}, steps, warmup,
                                     synchronizer(device))
    return {s: dict(preset=name, stage=f"teacher, {s} frames", batch=batch, ms=1e3 * t.median,
                    min_ms=1e3 * t.spread[0], max_ms=1e3 * t.spread[1], fps=batch / t.median)
            for s, t in timings.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny preset, batch 2, one step: checks the script runs")
    parser.add_argument("--presets", default="tiny,avenue")
    parser.add_argument("--batch", type=int, default=None, help="batch for every preset (default: per preset)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per stage (after --warmup)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true",
                        help="forward under bf16 autocast (sdmae train itself trains in float32)")
    parser.add_argument("--loading", action="store_true",
                        help="also time teacher steps fed from memory and from the frame cache")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for --loading")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)

    device = device_and_threads(args.device, args.threads)
    presets = ["tiny"] if args.quick else args.presets.split(",")
    steps, warmup = (1, 1) if args.quick else (args.steps, args.warmup)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"# sdmae training | device {device} ({dev_name}) | torch {torch.__version__} | threads "
          f"{torch.get_num_threads()} | {'bf16 autocast' if args.bf16 else 'float32'} | AdamW | median of {steps} steps after {warmup} warm-up | "
          f"{' '.join(sys.argv)}")
    print("| preset | input | batch | stage | ms/step median (min-max) | frames/s |")
    print("|---|---|---:|---|---:|---:|")
    rows = []
    for name in presets:
        cfg = get_preset(name)
        batch = 2 if args.quick else (args.batch or DEFAULT_BATCH.get(name, 8))
        model = build_model(cfg).to(device)
        for stage in ("teacher", "student"):
            r = bench_stage(cfg, model, stage, batch, steps, warmup, device, torch.bfloat16 if args.bf16 else None)
            r.update(preset=name)
            rows.append(r)
            h, w = cfg.model.input_size
            print(f"| {name} | {h}x{w} p{cfg.model.patch} | {batch} | {stage} | {r['ms']:.0f} "
                  f"({r['min_ms']:.0f}-{r['max_ms']:.0f}) | {r['fps']:.1f} |", flush=True)
        if args.loading:
            loaded = bench_loading(name, batch, steps, warmup, args.workers, device)
            for r in loaded.values():
                rows.append(r)
                print(f"| {name} | {h}x{w} p{cfg.model.patch} | {batch} | {r['stage']} ({args.workers} workers) | "
                      f"{r['ms']:.0f} ({r['min_ms']:.0f}-{r['max_ms']:.0f}) | {r['fps']:.1f} |", flush=True)
            print(f"| {name} | | | cache / memory frames/s | | "
                  f"{loaded['cache']['fps'] / loaded['memory']['fps']:.2f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=str(device), threads=torch.get_num_threads(), torch=torch.__version__, rows=rows),
                      f, indent=1)


if __name__ == "__main__":
    main()
