"""Peak resident memory of `sdmae train` and `sdmae evaluate` against the dataset's length.

Writes two synthetic Avenue-layout datasets (360x640 frames, the real Avenue's size),
one of N and one of 8N frames per split (8x the videos, each as long), and runs
each command as a child process at the avenue preset's input size (320x640 p16;
the tiny preset's small model, so an epoch of 8N frames takes minutes on a CPU,
and the frames, not the weights, dominate). Train runs 1 teacher epoch and no
student epoch. Peak RSS is measured from outside:
the kernel's maximum for the process (``wait4``), and the largest sum over the
process and its children sampled every 50 ms (DataLoader workers).

Train runs twice on each dataset: the first builds the frame cache, the second
reuses it; the table gives each one's wall time and first-epoch seconds.

    python benchmarks/bench_memory.py [--frames 300] [--factor 8] [--work DIR] [--json FILE]
        [--presets avenue,shanghaitech,ubnormal,ped2] [--no-scaling]

``--presets avenue,shanghaitech,...`` also gives, per preset, the peak RSS of a
training step at the preset's batch size (``bench_train.py``: model, activations,
AdamW state) and of scoring (``bench_pipeline.py --source memory``): what a
full-size run needs beside the frame cache (on disk) and, for ``evaluate``, one
video's maps. ``--no-scaling`` skips the N / 8N datasets.

``--sdmae-path DIR`` measures another checkout (its folder goes first on the
children's PYTHONPATH), e.g. the code before the frame cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness import cpu_name

VIDEO_FRAMES = 150
FRAME_SIZE = (360, 640)
MODEL_SIZE = "320x640"
# --quick: checks the script runs (tests), measures nothing worth quoting
QUICK = dict(video_frames=24, frame_size=(72, 96), model_size="64x96")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (/proc/PID/task/*/children, then VmRSS)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            pass  # the process ended between two reads
    return total


def run_measured(args: list[str], env: dict, command: list[str] | None = None) -> dict:
    """Run ``python -m sdmae ARGS`` (or ``python COMMAND ARGS``); its wall time and peak memory,
    measured from outside."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *(command or ["-m", "sdmae"]), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr_chunks = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command or ['sdmae'])} {' '.join(args)} failed ({proc.returncode}):\n{''.join(stderr_chunks)[-3000:]}")
    return {"seconds": time.perf_counter() - started, "peak_rss": usage.ru_maxrss * 1024, "peak_tree_rss": peak[0]}


def first_epoch_seconds(run: Path) -> float:
    return json.loads((run / "log.jsonl").read_text().splitlines()[0])["seconds"]


def measure(frames: int, work: Path, env: dict, video_frames: int, frame_size: tuple[int, int],
            model_size: str) -> dict:
    videos = max(1, frames // video_frames)
    data = work / f"data-{frames}"
    # written by a child process: a parent grown by the dataset would pass its size to every
    # child it forks, and the kernel's peak (ru_maxrss) counts the fork's pages before exec
    subprocess.run([sys.executable, "-c", "import sys; from sdmae.data import make_dataset; "
                    "make_dataset(sys.argv[1], layout='avenue', seed=1, num_train=int(sys.argv[2]), "
                    "num_test=int(sys.argv[2]), num_frames=int(sys.argv[3]), size=(int(sys.argv[4]), "
                    "int(sys.argv[5])))", str(data), str(videos), str(video_frames), *map(str, frame_size)],
                   env=env, check=True)
    env = dict(env, SDMAE_CACHE_DIR=str(work / f"cache-{frames}"))
    row = {"frames": videos * video_frames, "videos": videos}
    model_args = ["--preset", "tiny", "--input-size", model_size, "--patch", "16"]
    for name in ("train_cold", "train_warm"):
        run = work / f"run-{frames}-{name}"
        row[name] = run_measured(["train", "--data", str(data), "--layout", "avenue", "--out", str(run),
                                  *model_args, "--epochs", "1", "--student-epochs", "0", "--batch-size", "16"],
                                 env)
        row[name]["first_epoch_seconds"] = first_epoch_seconds(run)
    row["evaluate"] = run_measured(["evaluate", str(work / f"run-{frames}-train_warm"), "--data", str(data),
                                    "--layout", "avenue"], env)
    return row


def preset_rows(presets: list[str], env: dict, quick: bool) -> list[dict]:
    """Peak RSS of one training step at each preset's batch size, and of scoring."""
    from sdmae.config import get_preset

    here = Path(__file__).resolve().parent
    rows = []
    for name in presets:
        batch = 2 if quick else get_preset(name).train.batch_size
        train = run_measured(["--presets", name, "--batch", str(batch), "--steps", "1", "--warmup", "1"], env,
                             [str(here / "bench_train.py")])
        score = run_measured(["--preset", name, "--source", "memory", "--frames", "12" if quick else "64",
                              "--repeats", "1"], env, [str(here / "bench_pipeline.py")])
        rows.append({"preset": name, "batch": batch, "train_step": train, "scoring": score})
    return rows


def growth(small: dict, large: dict, key: str) -> tuple[float, float]:
    """(relative growth of peak RSS, bytes per extra frame)."""
    a, b = small[key], large[key]
    return b / a - 1, (b - a) / (large["frames"] - small["frames"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="N: frames per split of the small dataset")
    ap.add_argument("--factor", type=int, default=8)
    ap.add_argument("--work", help="folder for datasets, caches and runs (default: a temporary one)")
    ap.add_argument("--sdmae-path", help="checkout to measure instead of the installed sdmae")
    ap.add_argument("--quick", action="store_true", help="tiny frames and videos: checks that the script runs")
    ap.add_argument("--presets", help="also the peak RSS of a training step and of scoring at these presets")
    ap.add_argument("--no-scaling", action="store_true", help="skip the N / 8N datasets")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    shape = QUICK if a.quick else dict(video_frames=VIDEO_FRAMES, frame_size=FRAME_SIZE, model_size=MODEL_SIZE)
    if a.quick:
        a.frames, a.factor = QUICK["video_frames"], 2
    env = dict(os.environ)
    if a.sdmae_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(a.sdmae_path).resolve()),
                                                          env.get("PYTHONPATH")]))
    command = f"benchmarks/bench_memory.py {' '.join(sys.argv[1:] if argv is None else argv)}"
    result: dict = {}
    if not a.no_scaling:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(a.work or tmp)
            work.mkdir(parents=True, exist_ok=True)
            rows = [measure(n, work, env, **shape) for n in (a.frames, a.frames * a.factor)]
        result.update(rows=rows, growth=print_scaling(rows, shape, command))
    if a.presets:
        result["presets"] = presets = preset_rows(a.presets.split(","), env, a.quick)
        print(f"\n# peak RSS per preset, one process | {cpu_name()} | {command}")
        print("| preset | input | training step at batch | peak RSS MB | scoring, peak RSS MB |")
        print("|---|---|---:|---:|---:|")
        from sdmae.config import get_preset

        for r in presets:
            m = get_preset(r["preset"]).model
            print(f"| {r['preset']} | {m.input_size[0]}x{m.input_size[1]} p{m.patch} | {r['batch']} | "
                  f"{r['train_step']['peak_rss'] / 1e6:.0f} | {r['scoring']['peak_rss'] / 1e6:.0f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))


def print_scaling(rows: list[dict], shape: dict, command: str) -> dict:
    small, large = rows
    h, w = shape["frame_size"]
    print(f"# sdmae peak memory | {cpu_name()} | frames {h}x{w} -> model {shape['model_size']} p16, "
          f"{shape['video_frames']}-frame videos | {command}")
    print("| command | N frames | peak RSS MB (kernel) | peak RSS MB (process tree) | wall s | first epoch s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        for name in ("train_cold", "train_warm", "evaluate"):
            m = r[name]
            epoch = f"{m['first_epoch_seconds']:.1f}" if "first_epoch_seconds" in m else "-"
            print(f"| {name.replace('_', ' (') + (')' if '_' in name else '')} | {r['frames']} | "
                  f"{m['peak_rss'] / 1e6:.0f} | {m['peak_tree_rss'] / 1e6:.0f} | {m['seconds']:.1f} | {epoch} |")
    print()
    print(f"| command | peak RSS growth, {small['frames']} -> {large['frames']} frames | bytes per extra frame |")
    print("|---|---:|---:|")
    out = {}
    for name in ("train_cold", "train_warm", "evaluate"):
        rel, per_frame = growth({**small[name], "frames": small["frames"]},
                                {**large[name], "frames": large["frames"]}, "peak_rss")
        out[name] = {"relative": rel, "bytes_per_frame": per_frame}
        print(f"| {name.replace('_', ' ')} | {100 * rel:+.1f} % | {per_frame:,.0f} |")
    return out


if __name__ == "__main__":
    main()
