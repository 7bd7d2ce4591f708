"""Model-only throughput: the model fused for inference vs a plain baseline, per preset, in one run.

Variants (all in eval mode, same weights, same seeded masks, same input):

* ``baseline`` -- the architecture computed the straightforward way, as the
  original code does at test time: under ``torch.no_grad`` (the original scores
  under no_grad, not inference_mode), patch embedding over the whole grid,
  BatchNorm as a separate op, teacher decoder in full, then the student branch
  recomputing the decoder input and the shared first decoder block instead of
  reusing them. The encoder runs once.
* ``model`` -- ``SDMAE.forward(student=True)`` under ``torch.no_grad`` (this
  repository's model: shared first block computed once).
* ``fast`` -- the same model after ``fuse_for_inference()`` (BatchNorm folded
  into the q/k/v convs) under inference_mode, float32: what ``Detector.load``
  scores with.
* ``fast-bf16`` -- that model after ``set_precision("bf16")``: autocast to
  bfloat16, and on a CPU attention as blocked bf16 matmuls (what
  ``precision="auto"`` picks on hardware with native bf16; the header line says
  what auto resolves to).
* ``fast-compile``, ``fast-bf16-compile`` -- ``torch.compile`` of the fp32 / bf16
  fused model's computation (``SDMAE.run``); only with ``--compile``.

Correctness first: every float32 variant must equal the model within 1e-4
relative; bf16 is reported as the relative error of predictions and of the
frame scores (computed by ``kernels.score``, as the Detector does).

Run: python benchmarks/bench_model.py [--quick] [--presets avenue,...] [--batch N]
     [--repeats R] [--device cpu|cuda] [--compile] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch
from _harness import device_and_threads, device_name, synchronizer, timeit_interleaved

from sdmae import kernels
from sdmae.config import get_preset
from sdmae.hardware import resolve_precision
from sdmae.model import AUTOCAST_DTYPES, SDMAE, seeded_masks
from sdmae.score import ScoreSpec

DEFAULT_BATCH = {"tiny": 32, "avenue": 8, "shanghaitech": 8, "ubnormal": 8, "ped2": 4}


def baseline_forward(model: SDMAE, x, ids_keep, ids_restore):
    """Straightforward test-time forward: no shared decoder prefix (the student
    branch recomputes the decoder input and the first block(s)); returns (teacher, student)."""
    with torch.no_grad():
        latent = model.forward_encoder(x, ids_keep)
        teacher, _ = model.forward_decoder(latent, ids_restore)  # teacher decoder in full
        h = model.decoder_input(latent, ids_restore)  # student: decoder input and shared block(s) again
        for blk in model.decoder_blocks[:model.cfg.student_branch]:
            h = blk(h)
        return teacher, model.forward_student(h)


def frame_scores(teacher, student, target, weights, cfg):
    """(N,) frame scores of one pass, through the Detector's own back end (kernels.score)."""
    spec = ScoreSpec(cfg.patch, cfg.input_size, map_normal=cfg.map_normal)
    return kernels.score(target.float().contiguous(), teacher.float().contiguous(), student.float().contiguous(),
                         weights.float().contiguous(), spec, with_maps=False).frame


def rel_err(a, b) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1e-12))


def trained_like(cfg, device, seed=0) -> SDMAE:
    """A freshly initialised model whose BatchNorm has non-trivial running stats
    (a few train-mode passes), so that folding is actually exercised."""
    model = SDMAE(cfg, generator=torch.Generator().manual_seed(seed)).to(device)
    g = torch.Generator().manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        for i in range(2):
            x = (torch.rand(2, cfg.in_chans, *cfg.input_size, generator=g) * 2 - 1).to(device)
            ik, ir, _ = seeded_masks([i, i + 1], cfg.num_tokens, cfg.mask_ratio, device=device)
            model(x, ik, ir)
    return model.eval()


def bench_preset(name, batch, repeats, warmup, device, use_compile, quick):
    cfg = get_preset(name).model
    if quick:
        batch = min(batch, 2)
    model = trained_like(cfg, device)
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(batch, cfg.in_chans, *cfg.input_size, generator=g) * 2 - 1).to(device)
    ik, ir, _ = seeded_masks(torch.arange(batch), cfg.num_tokens, cfg.mask_ratio, device=device)
    target = torch.randn(batch, cfg.num_tokens, cfg.patch ** 2 * cfg.out_chans, generator=g).to(device) * 0.5
    weights = torch.softmax(torch.randn(batch, cfg.num_tokens, generator=g), 1).to(device)

    fast = copy.deepcopy(model).fuse_for_inference()
    fast_bf16 = copy.deepcopy(fast).set_precision("bf16")
    variants = {
        "baseline": lambda: baseline_forward(model, x, ik, ir),
        "model": lambda: _ts(_nograd(model, x, ik, ir)),
        "fast": lambda: _ts(_inference(fast, x, ik, ir)),
        "fast-bf16": lambda: _ts(_inference(fast_bf16, x, ik, ir)),
    }
    if use_compile:  # compile the computation only; inference_mode tensors cannot be traced
        for label, scorer in (("fast-compile", fast), ("fast-bf16-compile", fast_bf16)):
            compiled = torch.compile(scorer.run)

            def run_compiled(compiled=compiled, dtype=AUTOCAST_DTYPES[scorer.precision]):
                with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                     enabled=dtype is not None):
                    teacher, student, _ = compiled(x, ik, ir)
                return teacher.float(), student.float()

            start = time.perf_counter()
            run_compiled()
            print(f"# {name}: {label} first call (compilation) {time.perf_counter() - start:.1f} s", flush=True)
            variants[label] = run_compiled

    # correctness first: every variant against the plain model
    ref_t, ref_s = variants["model"]()
    ref_score = frame_scores(ref_t, ref_s, target, weights, cfg)
    errs = {}
    for v, fn in variants.items():
        if v == "model":
            errs[v] = (0.0, 0.0)
            continue
        t, s = fn()
        e = max(rel_err(t, ref_t), rel_err(s, ref_s))
        es = rel_err(frame_scores(t.float(), s.float(), target, weights, cfg), ref_score)
        if "bf16" not in v and e > 1e-4:
            raise SystemExit(f"{name}/{v}: predictions differ from the model (relative {e:.2e} > 1e-4)")
        errs[v] = (e, es)

    rows = []
    timed = timeit_interleaved(variants, repeats, warmup, synchronizer(device))
    for v in variants:
        med, (lo, hi), _ = timed[v]
        rows.append(dict(preset=name, variant=v, batch=batch, size=cfg.input_size, patch=cfg.patch,
                         tokens=cfg.num_tokens, ms=1e3 * med, min_ms=1e3 * lo, max_ms=1e3 * hi,
                         fps=batch / med, pred_rel_err=errs[v][0], score_rel_err=errs[v][1]))
    base = next(r for r in rows if r["variant"] == "baseline")
    plain = next(r for r in rows if r["variant"] == "model")["ms"]
    for r in rows:
        r["vs_baseline"] = base["ms"] / r["ms"]
        r["vs_baseline_min"] = base["min_ms"] / r["min_ms"]  # best case of each: robust to others' load
        r["vs_model"] = plain / r["ms"]
    return rows


def _nograd(model, x, ik, ir):
    with torch.no_grad():
        return model(x, ik, ir, student=True)


def _inference(model, x, ik, ir):
    with torch.inference_mode():
        return model(x, ik, ir, student=True)


def _ts(out):
    return out.teacher, out.student


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny preset, batch 2, one repeat: checks the script runs")
    parser.add_argument("--presets", default="tiny,shanghaitech,avenue",
                        help="comma-separated presets (also: ubnormal, ped2)")
    parser.add_argument("--batch", type=int, default=None, help="batch for every preset (default: per preset)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the fused model")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)

    device = device_and_threads(args.device, args.threads)
    presets = ["tiny"] if args.quick else args.presets.split(",")
    repeats, warmup = (1, 1) if args.quick else (args.repeats, args.warmup)
    dev_name = device_name(device)
    print(f"# sdmae model | device {device} ({dev_name}) | torch {torch.__version__} | threads "
          f"{torch.get_num_threads()} | float32 unless noted | median of {repeats} after {warmup} warm-up | "
          f"{' '.join(sys.argv)} | precision auto -> {resolve_precision('auto', device)}")
    print("| preset | input | L | batch | variant | ms/batch median (min-max) | frames/s | vs baseline "
          "(of mins) | vs model | pred rel err | score rel err |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    all_rows = []
    for name in presets:
        batch = args.batch or DEFAULT_BATCH.get(name, 8)
        for r in bench_preset(name, batch, repeats, warmup, device, args.compile, args.quick):
            all_rows.append(r)
            print(f"| {r['preset']} | {r['size'][0]}x{r['size'][1]} p{r['patch']} | {r['tokens']} | {r['batch']} "
                  f"| {r['variant']} | {r['ms']:.1f} ({r['min_ms']:.1f}-{r['max_ms']:.1f}) | {r['fps']:.1f} "
                  f"| {r['vs_baseline']:.2f}x ({r['vs_baseline_min']:.2f}x) | {r['vs_model']:.2f}x | {r['pred_rel_err']:.1e} "
                  f"| {r['score_rel_err']:.1e} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=str(device), device_name=dev_name, threads=torch.get_num_threads(),
                           torch=torch.__version__, rows=all_rows), f, indent=1)


if __name__ == "__main__":
    main()
