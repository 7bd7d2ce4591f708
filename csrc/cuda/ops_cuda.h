// CUDA twins of csrc/ops.h except gather_patches (on a GPU the model indexes with
// torch). Pointers are device pointers, validated by sdmae/kernels.py (device,
// dtype, shape, contiguity); kernels run on `stream`.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../score_spec.h"

namespace sdmae {
namespace cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("sdmae._C_cuda: ") + what + ": " + cudaGetErrorString(status));
}

// Threads per block of every kernel; the block reductions size their shared arrays by it.
constexpr int kThreads = 256;
// Grid-stride kernels cover any count with a bounded grid: 65535 * 8 blocks of 256
// threads (~134M) are hundreds of times what a GPU runs at once, so the cap costs
// no parallelism and keeps the block count far inside gridDim.x's 2^31 - 1.
constexpr int64_t kMaxBlocks = 65535 * 8;

// Blocks for `items` work items, `per_block` to a block, at most kMaxBlocks.
inline unsigned grid_for(int64_t items, int64_t per_block = kThreads) {
  const int64_t blocks = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

void patchify(const float* x, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s);
void token_weights(const float* g, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s);

// cache: workspace of (S, 3, h, w) floats; slot_frames (S,) source frame of each
// slot; sample_slots (N, 5) slots of t-offset, t, t+offset, t-step, t+step.
void prepare(const uint8_t* frames, int64_t h0, int64_t w0, const int64_t* slot_frames, int64_t num_slots,
             const int64_t* sample_slots, int64_t n, int64_t h, int64_t w, int64_t p, float* cache,
             float* inputs, float* gradients, float* weights, cudaStream_t s);

// See csrc/ops.h and sdmae.reference.score_passes.
void score_passes(const float* target, const float* teacher, const float* student, const float* hidden,
                  const float* weights, int64_t k, int64_t n, int64_t c, const ScoreSpec& spec, float* error,
                  float* discrepancy, float* maps, cudaStream_t s);

}  // namespace cuda
}  // namespace sdmae
