"""Fused kernels vs their NumPy twins, against this machine's memcpy roofline.

For every op: correctness against the twin first, then warm-up and the median
(and spread) of repeated runs. ``gather_patches`` (the visible half of the
tokens, as the MAE encoder embeds them) also gets a row for the torch
advanced-indexing expression it replaces, when torch is installed. Bytes moved count every read and write the op
must do at least once; the roofline is a large ``np.copyto`` measured in the
same run (read + write counted, like the ops). The C++ ops write into reused
output buffers (``out=``), as a streaming pipeline does, so that first-touch
page faults of fresh allocations are not billed to the kernel.

Run: python benchmarks/bench_kernels.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from _harness import cpu_name, timeit

from sdmae import kernels, reference
from sdmae.score import ScoreSpec

# (name, frames (T is batch + 6 for the +-3 offsets), source size, model size, patch)
SHAPES = {
    "avenue": dict(source=(360, 640), size=(320, 640), patch=16),
    "shanghaitech": dict(source=(480, 856), size=(160, 320), patch=8),
}
BATCH = 32


def memcpy_bandwidth(nbytes=256 << 20, repeats=7):
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    median = timeit(lambda: np.copyto(dst, src), repeats).median
    return 2 * nbytes / median  # read + write


def check_close(a, b, what):
    a = a.cpu().numpy() if hasattr(a, "cpu") else a
    scale = max(1.0, float(np.abs(b).max()))
    if not np.allclose(a, b, rtol=2e-5, atol=2e-6 * scale):
        raise SystemExit(f"{what}: kernel does not match its twin (max diff {np.abs(a - b).max():.3g})")


PASSES = 2


def case_inputs(shape, batch, rng):
    h0, w0 = shape["source"]
    h, w = shape["size"]
    p = shape["patch"]
    frames = rng.integers(0, 256, (batch + 6, h0, w0, 3), dtype=np.uint8)
    centres = np.arange(3, batch + 3)
    l, d = (h // p) * (w // p), p * p * 4
    target = rng.standard_normal((batch, l, d), dtype=np.float32)
    # the Detector's default: K = 2 complementary passes, each token hidden in one of them
    teacher = target + 0.1 * rng.standard_normal((PASSES, batch, l, d), dtype=np.float32)
    student = teacher + 0.05 * rng.standard_normal((PASSES, batch, l, d), dtype=np.float32)
    first = (rng.random((batch, l)) < 0.5).astype(np.float32)
    hidden = np.stack([first, 1 - first])  # (K, N, L)
    return frames, centres, target, teacher, student, hidden


def torch_indexing_gather(x, ids, p):
    """The plain-torch way to take the patches at ids (conv-weight order), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    n, c, h, w = x.shape
    gh, gw = h // p, w // p
    xt, it = torch.from_numpy(x), torch.from_numpy(ids)
    batch = torch.arange(n)[:, None]
    # Separated advanced indices put (N, K) first: (N, K, C, p, p).
    return lambda: xt.view(n, c, gh, p, gw, p)[batch, :, it // gw, :, it % gw, :].reshape(n, ids.shape[1], -1)


def bench_case(name, shape, batch, repeats, twin_repeats, rng, cuda):
    h, w = shape["size"]
    p = shape["patch"]
    frames, centres, target, teacher, student, hidden = case_inputs(shape, batch, rng)
    n, l, d = target.shape
    spec = ScoreSpec(p, (h, w), map_normal=-1.0, tokens="visible", token_weighting="uniform")
    used_frames = len(np.unique(np.clip(centres[:, None] + [-3, -1, 0, 1, 3], 0, len(frames) - 1)))
    prep_bytes = used_frames * frames[0].nbytes + 4 * (n * 12 * h * w + n * l)
    score_bytes = 4 * ((2 * PASSES + 1) * n * l * d + (PASSES + 1) * n * l + 2 * n * l + n + n * h * w)

    prepared = reference.prepare(frames, centres, (h, w), p)
    weights = prepared.weights
    rows = []

    # correctness first
    got = kernels.prepare(frames, centres, (h, w), p, backend="cpp")
    for a, b, what in zip(got, prepared, ("inputs", "gradients", "weights")):
        check_close(a, b, f"prepare.{what}")
    got = kernels.score(target, teacher, student, weights, spec, hidden=hidden, backend="cpp")
    expected = reference.score(target, teacher, student, hidden, weights, spec)
    for a, b in zip(got, expected):
        check_close(a, b, "score")

    # K = L/2 random visible tokens per sample, in random order as the encoder's mask gives them.
    ids = np.stack([rng.permutation(l)[: l // 2] for _ in range(n)]).astype(np.int64)
    k, c = ids.shape[1], prepared.inputs.shape[1]
    gathered = reference.gather_patches(prepared.inputs, ids, p)
    check_close(kernels.gather_patches(prepared.inputs, ids, p, backend="cpp"), gathered, "gather_patches")
    gather_bytes = 8 * n * k * c * p * p + 8 * n * k  # read + write each patch float, read the ids

    target_image = np.concatenate([prepared.inputs[:, kernels.CENTRE_FRAME], np.zeros_like(prepared.inputs[:, :1])], axis=1)
    check_close(kernels.patchify(target_image, p, backend="cpp"), reference.patchify(target_image, p), "patchify")
    out = reference.Prepared(np.empty_like(prepared.inputs), np.empty_like(prepared.gradients),
                             np.empty_like(prepared.weights))
    ops = {
        "prepare": (prep_bytes,
                    lambda: reference.prepare(frames, centres, (h, w), p),
                    lambda: kernels.prepare(frames, centres, (h, w), p, out=out, backend="cpp")),
        "score": (score_bytes,
                  lambda: reference.score(target, teacher, student, hidden, weights, spec),
                  lambda: kernels.score(target, teacher, student, weights, spec, hidden=hidden, backend="cpp")),
        "patchify": (8 * prepared.inputs.size,
                     lambda: reference.patchify(prepared.inputs, p),
                     lambda: kernels.patchify(prepared.inputs, p, backend="cpp")),
        # what the Detector patchifies every batch: frame t's RGB + a zero map channel
        "patchify, 4-ch target": (8 * target_image.size,
                                  lambda: reference.patchify(target_image, p),
                                  lambda: kernels.patchify(target_image, p, backend="cpp")),
        "gather_patches": (gather_bytes,
                           lambda: reference.gather_patches(prepared.inputs, ids, p),
                           lambda: kernels.gather_patches(prepared.inputs, ids, p, backend="cpp")),
        "token_weights": (4 * (prepared.gradients.size + n * l),
                          lambda: reference.token_weights(prepared.gradients, p),
                          lambda: kernels.token_weights(prepared.gradients, p, backend="cpp")),
    }
    for op, (nbytes, twin, fused) in ops.items():
        t_twin = timeit(twin, twin_repeats).median
        t_cpp, spread, _ = timeit(fused, repeats)
        rows.append(dict(case=name, op=op, device="cpu", twin_ms=1e3 * t_twin, ms=1e3 * t_cpp,
                         spread_ms=[1e3 * s for s in spread], speedup=t_twin / t_cpp, gbps=nbytes / t_cpp / 1e9))

    torch_gather = torch_indexing_gather(prepared.inputs, ids, p)
    if torch_gather is not None:
        check_close(torch_gather(), gathered, "torch-indexing gather")
        t_torch, spread, _ = timeit(torch_gather, repeats)
        rows.append(dict(case=name, op="gather_patches, torch indexing", device="cpu", twin_ms=None,
                         ms=1e3 * t_torch, spread_ms=[1e3 * s for s in spread], speedup=None,
                         gbps=gather_bytes / t_torch / 1e9))

    if cuda:
        import torch

        sync = torch.cuda.synchronize
        f_d = torch.from_numpy(frames).cuda()
        tg, te, stu, wt, hd = (torch.from_numpy(a).cuda() for a in (target, teacher, student, weights, hidden))
        got = kernels.prepare(f_d, centres, (h, w), p, backend="cuda")
        for a, b, what in zip(got, prepared, ("inputs", "gradients", "weights")):
            check_close(a, b, f"cuda prepare.{what}")
        got = kernels.score(tg, te, stu, wt, spec, hidden=hd, backend="cuda")
        for a, b in zip(got, expected):
            check_close(a, b, "cuda score")
        for op, nbytes, fn in [
            ("prepare", prep_bytes, lambda: kernels.prepare(f_d, centres, (h, w), p, backend="cuda")),
            ("score", score_bytes, lambda: kernels.score(tg, te, stu, wt, spec, hidden=hd, backend="cuda")),
        ]:
            t_gpu, spread, _ = timeit(fn, 20, warmup=3, sync=sync)
            rows.append(dict(case=name, op=op, device="cuda", twin_ms=None, ms=1e3 * t_gpu,
                             spread_ms=[1e3 * s for s in spread], speedup=None, gbps=nbytes / t_gpu / 1e9))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repeat: checks the script runs")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    shapes = SHAPES
    batch, repeats, twin_repeats = BATCH, 7, 3
    if args.quick:
        shapes = {"quick": dict(source=(45, 70), size=(32, 64), patch=16)}
        batch, repeats, twin_repeats = 2, 1, 1
    cuda = "cuda" in kernels.available_backends()
    roofline = memcpy_bandwidth(16 << 20 if args.quick else 256 << 20) / 1e9

    threads = kernels._C.max_threads()
    print(f"# sdmae kernels | batch {batch} | float32 | CPU threads {threads} ({cpu_name()})"
          f" | OpenMP {kernels._C.has_openmp} | CUDA {'yes' if cuda else 'no'} | {sys.argv[0]}")
    print(f"# memcpy roofline (np.copyto, read+write): {roofline:.2f} GB/s")
    print("| case | op | device | twin ms | fused ms (min-max) | speed-up | GB/s | % of memcpy |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for name, shape in shapes.items():
        for r in bench_case(name, shape, batch, repeats, twin_repeats, rng, cuda):
            rows.append(r)
            twin = f"{r['twin_ms']:.1f}" if r["twin_ms"] is not None else "-"
            speed = f"{r['speedup']:.1f}x" if r["speedup"] is not None else "-"
            share = f"{100 * r['gbps'] / roofline:.0f}%" if r["device"] == "cpu" else "-"
            print(f"| {name} {shape['source'][0]}x{shape['source'][1]}->{shape['size'][0]}x{shape['size'][1]} "
                  f"p{shape['patch']} | {r['op']} | {r['device']} | {twin} | {r['ms']:.1f} "
                  f"({r['spread_ms'][0]:.1f}-{r['spread_ms'][1]:.1f}) | {speed} | {r['gbps']:.2f} | {share} |",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(roofline_gbps=roofline, threads=threads, batch=batch, rows=rows,
                           omp_num_threads=os.environ.get("OMP_NUM_THREADS")), f, indent=1)


if __name__ == "__main__":
    main()
