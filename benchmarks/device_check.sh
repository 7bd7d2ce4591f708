#!/usr/bin/env bash
# Every check that needs a GPU, in one pass: a lent machine's time is short
# (15 minutes a session here), so build, test and measure in one command.
#
#   OUT=/some/dir bash benchmarks/device_check.sh
#
# 1. builds sdmae._C and sdmae._C_cuda in place (SDMAE_CUDA=1: no CUDA is an error)
#    for the visible GPUs' architectures, and checks that a kernel launch runs
# 2. pins the CUDA kernels to their NumPy twins, and GPU scoring to CPU scoring
#    (tests/test_kernels.py, tests/test_detector.py -k cuda)
# 3. torchrun training with --device cuda: 2 NCCL ranks where 2 GPUs are visible;
#    with one GPU (NCCL needs a GPU per rank) 1 rank, plus the 1-rank NCCL checks
#    of tests/test_distributed.py
# 4. bench_kernels.py (CUDA rows), bench_model.py --device cuda at batch 32,
#    bench_pipeline.py --device cuda from uint8 frames in GPU memory and from a file, and
#    at 160x224 p16 from a file (with maps) and as live cameras (pipeline_file.md)
#
# Writes at most 8 files to $OUT (default ./device-out): build.log, tests.log,
# distributed.log, kernels.md, model.md, pipeline_memory.md, pipeline_file.md,
# summary.txt.
# A missing Python package (PyAV on this project's H200 image) can travel as
# wheels in .whl/: see benchmarks/README.md.
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sdmae-site .whl/*.whl \
    && export PYTHONPATH=/tmp/sdmae-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the in-place build below

status() { echo "$1: $2" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$OUT/summary.txt" 2>&1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  >> "$OUT/summary.txt" 2>&1

SDMAE_CUDA=1 "$PY" setup.py build_ext --inplace -j "$(nproc)" > "$OUT/build.log" 2>&1
status build $?
grep -h "sdmae: CUDA architectures" "$OUT/build.log" >> "$OUT/summary.txt"
# a launch, not just a device count: a build without this GPU's architecture imports fine
"$PY" -c "from sdmae import kernels as k; p = k.cuda_problem(0); print('probe:', p or 'a kernel ran on GPU 0'); \
assert p is None" >> "$OUT/build.log" 2>&1
status cuda-module $?

"$PY" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_detector.py > "$OUT/tests.log" 2>&1
status tests $?
tail -n 3 "$OUT/tests.log" >> "$OUT/summary.txt"

GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$GPUS" -ge 2 ]; then
  RANKS=2
else  # two ranks on one GPU is not an NCCL setup: say so, and train on it with one rank
  RANKS=1
  echo "distributed: $GPUS GPU visible; NCCL needs one GPU per rank, so 1-rank training (no process group)" \
    "and 1-rank NCCL collectives only" | tee -a "$OUT/summary.txt" > "$OUT/distributed.log"
fi
DIST=$(mktemp -d)
"$PY" -c "import sys; from sdmae.data import make_dataset; make_dataset(sys.argv[1], layout='avenue', seed=3, \
num_train=2, num_test=2, num_frames=48)" "$DIST/data" >> "$OUT/distributed.log" 2>&1 \
  && "$PY" -m torch.distributed.run --standalone --nproc_per_node "$RANKS" -m sdmae train --data "$DIST/data" \
    --layout avenue --out "$DIST/run" --device cuda --preset tiny --epochs 1 --student-epochs 1 --batch-size 16 \
    >> "$OUT/distributed.log" 2>&1
status "distributed_train_${RANKS}_rank" $?
"$PY" -m pytest -q -p no:cacheprovider tests/test_distributed.py -k nccl >> "$OUT/distributed.log" 2>&1
status distributed_nccl_tests $?
tail -n 1 "$OUT/distributed.log" >> "$OUT/summary.txt"

"$PY" benchmarks/bench_kernels.py > "$OUT/kernels.md" 2>&1
status bench_kernels $?
"$PY" benchmarks/bench_model.py --device cuda --presets avenue,shanghaitech --batch 32 --repeats 10 \
  > "$OUT/model.md" 2>&1
status bench_model $?
"$PY" benchmarks/bench_pipeline.py --device cuda --source memory --frames 512 --repeats 5 \
  > "$OUT/pipeline_memory.md" 2>&1
status bench_pipeline_memory $?
"$PY" benchmarks/bench_pipeline.py --device cuda --frames 256 > "$OUT/pipeline_file.md" 2>&1
status bench_pipeline_file $?
# issue 11's sizes: 160x224 p16 from 288x384 MJPEG, with maps as sdmae evaluate; then live cameras
SMALL="--device cuda --preset avenue --input-size 160x224 --patch 16 --video-size 288x384 --frames 250"
"$PY" benchmarks/bench_pipeline.py $SMALL --maps >> "$OUT/pipeline_file.md" 2>&1
status bench_pipeline_file_160x224 $?
"$PY" benchmarks/bench_pipeline.py $SMALL --source streams --streams 16 --cameras 1,2,4,8,16,32,64 --seconds 6 \
  >> "$OUT/pipeline_file.md" 2>&1
status bench_pipeline_streams $?
