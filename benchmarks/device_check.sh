#!/usr/bin/env bash
# Every check that needs a GPU, in one pass: a lent machine's time is short
# (15 minutes a session here), so build, test and measure in one command.
#
#   OUT=/some/dir bash benchmarks/device_check.sh
#
# 1. builds sdmae._C and sdmae._C_cuda in place (SDMAE_CUDA=1: no CUDA is an error)
# 2. pins the CUDA kernels to their NumPy twins, and GPU scoring to CPU scoring
#    (tests/test_kernels.py, tests/test_detector.py -k cuda)
# 3. bench_kernels.py (CUDA rows), bench_model.py --device cuda at batch 32,
#    bench_pipeline.py --device cuda from uint8 frames in GPU memory and from a file
#
# Writes at most 8 files to $OUT (default ./device-out): build.log, tests.log,
# kernels.md, model.md, pipeline_memory.md, pipeline_file.md, summary.txt.
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
"$PY" -c "import sdmae._C_cuda as c; assert c.device_count() > 0, 'no device'" >> "$OUT/build.log" 2>&1
status cuda-module $?

"$PY" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_detector.py > "$OUT/tests.log" 2>&1
status tests $?
tail -n 3 "$OUT/tests.log" >> "$OUT/summary.txt"

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
