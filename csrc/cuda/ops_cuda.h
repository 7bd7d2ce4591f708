// CUDA twins of csrc/ops.h. Pointers are device pointers, validated by
// sdmae/kernels.py (device, dtype, shape, contiguity); kernels run on `stream`.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace sdmae {
namespace cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("sdmae._C_cuda: ") + what + ": " + cudaGetErrorString(status));
}

inline int blocks_for(int64_t count, int threads) { return static_cast<int>((count + threads - 1) / threads); }

void patchify(const float* x, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s);
void unpatchify(const float* t, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s);
// ids (N, K) in [0, L), checked by the caller -> out (N, K, C*p*p), order (channel, row, column).
void gather_patches(const float* x, const int64_t* ids, float* out, int64_t n, int64_t c, int64_t h, int64_t w,
                    int64_t p, int64_t k, cudaStream_t s);
void token_weights(const float* g, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s);

// cache: workspace of (S, 3, h, w) floats; slot_frames (S,) source frame of each
// slot; sample_slots (N, 5) slots of t-offset, t, t+offset, t-step, t+step.
void prepare(const uint8_t* frames, int64_t h0, int64_t w0, const int64_t* slot_frames, int64_t num_slots,
             const int64_t* sample_slots, int64_t n, int64_t h, int64_t w, int64_t p, float* cache,
             float* inputs, float* gradients, float* weights, cudaStream_t s);

// See csrc/ops.h and sdmae.reference.score.
void score(const float* target, const float* teacher, const float* student, const float* hidden,
           const float* weights, int64_t k, int64_t n, int64_t l, int64_t c, int64_t p, int64_t h, int64_t w,
           float discrepancy_weight, float map_channel_weight, float map_low, int tokens, bool uniform,
           int64_t frame_top, float map_weight, float* token_error, float* token_discrepancy, float* frame,
           float* maps, cudaStream_t s);

}  // namespace cuda
}  // namespace sdmae
