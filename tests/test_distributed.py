"""torchrun on this CPU: 2 gloo processes train and evaluate like one process."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from sdmae.train import load_checkpoint

pytestmark = [
    pytest.mark.integration,  # torchrun processes
    pytest.mark.skipif(not torch.distributed.is_available() or shutil.which("torchrun") is None
                       and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
                       reason="torch.distributed / torchrun not available"),
]

TRAIN_ARGS = ["--preset", "tiny", "--epochs", "1", "--student-epochs", "1", "--batch-size", "16", "--seed", "5"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc, *args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "sdmae", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def single(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "sdmae", *args], capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_process_training_equals_one_process_with_the_same_global_batch(tiny_data, tmp_path):
    torchrun(2, "train", "--data", str(tiny_data), "--layout", "avenue", "--out", str(tmp_path / "ddp"), *TRAIN_ARGS)
    single("train", "--data", str(tiny_data), "--layout", "avenue", "--out", str(tmp_path / "one"), *TRAIN_ARGS)
    ddp = load_checkpoint(tmp_path / "ddp" / "student.pt")["model"]
    one = load_checkpoint(tmp_path / "one" / "student.pt")["model"]
    # Float tolerance: sums over ranks round differently, and AdamW normalises each step,
    # so single elements whose true gradient is ~0 (key biases: softmax ignores them) move by
    # rounding noise, up to a third of one step (6.3e-4 seen at the tiny preset's lr 2e-3) with
    # beta2 = 0.95. A real sharding error moves whole tensors by steps: their mean difference
    # must stay below a twentieth of a step.
    for k in one:
        torch.testing.assert_close(ddp[k], one[k], rtol=1e-3, atol=1e-3, msg=k)
        assert (ddp[k].float() - one[k].float()).abs().mean() < 1e-4 + 1e-4 * one[k].float().abs().mean(), k
    # rank 0 alone wrote the log: one line per epoch
    assert len((tmp_path / "ddp" / "log.jsonl").read_text().splitlines()) == 2


def test_two_processes_train_from_one_frame_cache_built_once(tiny_data, tmp_path):
    cache = tmp_path / "frames"
    done = torchrun(2, "train", "--data", str(tiny_data), "--layout", "avenue", "--out", str(tmp_path / "ddp"),
                    *TRAIN_ARGS, "--input-size", "64x96", "--cache-dir", str(cache))
    assert done.stderr.count("sdmae: building the frame cache") == 1
    (folder,) = cache.iterdir()  # no second cache, no temporary folder left
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["built_by"]["rank"] == 0
    assert load_checkpoint(tmp_path / "ddp" / "student.pt")["done"]


def test_sharded_evaluation_gives_identical_results(tiny_data, tiny_run, tmp_path):
    torchrun(2, "evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--json",
             str(tmp_path / "ddp.json"))
    single("evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--json",
           str(tmp_path / "one.json"))
    ddp, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("ddp", "one"))
    for key in ("micro_auc", "macro_auc", "rbdc", "tbdc", "frames"):
        assert ddp[key] == one[key], key


def nccl_gpus():
    """CUDA devices NCCL could use here (0 without a GPU or an NCCL build)."""
    if not (torch.cuda.is_available() and torch.distributed.is_nccl_available()):
        return 0
    return torch.cuda.device_count()


# NCCL with one GPU: every rank needs its own GPU, so with one device a 1-rank group checks
# the plumbing: setup() selects the device (gather_object and barrier() with NCCL use the
# current one), and the collectives dist.mean and dist.gather issue work on it.
NCCL_ONE_RANK = """
import torch, torch.distributed as tdist
from sdmae import distributed as dist
ctx = dist.setup("cuda")
assert torch.cuda.current_device() == ctx.device.index, (torch.cuda.current_device(), ctx.device)
tdist.init_process_group("nccl", init_method="tcp://127.0.0.1:{port}", rank=0, world_size=1)
t = torch.tensor([2.5], dtype=torch.float64, device=ctx.device)  # as dist.mean
tdist.all_reduce(t)
assert t.item() == 2.5
out = [None]
tdist.gather_object({{"scores": [1.0, 2.0]}}, out, dst=0)  # as dist.gather
assert out == [{{"scores": [1.0, 2.0]}}], out
dist.barrier()
dist.shutdown()
print("nccl ok")
"""


@pytest.mark.skipif(nccl_gpus() < 1, reason="needs a CUDA GPU and NCCL")
def test_nccl_collectives_on_one_gpu():
    env = dict(os.environ, LOCAL_RANK="0")
    done = subprocess.run([sys.executable, "-c", NCCL_ONE_RANK.format(port=free_port())], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0 and "nccl ok" in done.stdout, done.stderr[-3000:]


@pytest.mark.skipif(nccl_gpus() < 2, reason="NCCL needs one GPU per rank: 2 GPUs")
def test_nccl_two_gpu_training_and_sharded_evaluation(tiny_data, tiny_run, tmp_path):
    torchrun(2, "train", "--data", str(tiny_data), "--layout", "avenue", "--out", str(tmp_path / "ddp"),
             "--device", "cuda", *TRAIN_ARGS)
    assert len((tmp_path / "ddp" / "log.jsonl").read_text().splitlines()) == 2
    torchrun(2, "evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--device", "cuda",
             "--json", str(tmp_path / "ddp.json"))
    single("evaluate", str(tiny_run), "--data", str(tiny_data), "--layout", "avenue", "--device", "cuda",
           "--json", str(tmp_path / "one.json"))
    ddp, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("ddp", "one"))
    assert ddp["frames"] == one["frames"]
    for key in ("micro_auc", "macro_auc"):  # each GPU scores its videos alone: TF32 rounding may differ
        assert abs(ddp[key] - one[key]) < 1e-3, key


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    import torch

    from sdmae import distributed
    from sdmae.errors import SdmaeError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_cuda_device() == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "2")  # a third process on a 2-GPU node
    with pytest.raises(SdmaeError, match="LOCAL_RANK 2 needs GPU 2 but this node has 2"):
        distributed.local_cuda_device()
