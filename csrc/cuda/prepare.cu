// prepare on the GPU: resize each used source frame once into a planar cache
// (one thread per output pixel, three channels), then one thread per sample
// pixel writes the 9 input channels and 3 gradient channels; token weights
// reuse the token_weights kernel on the fresh gradients.
#include "ops_cuda.h"

namespace sdmae {
namespace cuda {
namespace {

// a * wa + b * wb with each product and the sum rounded: no fused multiply-add,
// so the GPU's resize is bit-identical to the C++ kernel and the NumPy twin.
__device__ inline float blend(float a, float wa, float b, float wb) {
  return __fadd_rn(__fmul_rn(a, wa), __fmul_rn(b, wb));
}

// Half-pixel centres clamped at 0, computed in double like the CPU table.
__device__ inline void source_index(int64_t i, int64_t n_in, int64_t n_out, int64_t& lo, int64_t& hi, float& frac) {
  const double scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  double src = (static_cast<double>(i) + 0.5) * scale - 0.5;
  src = src < 0.0 ? 0.0 : src;
  lo = static_cast<int64_t>(floor(src));
  lo = lo < n_in - 1 ? lo : n_in - 1;
  hi = lo + 1 < n_in - 1 ? lo + 1 : n_in - 1;
  frac = static_cast<float>(src - static_cast<double>(lo));
}

__global__ void resize_kernel(const uint8_t* __restrict__ frames, const int64_t* __restrict__ slot_frames,
                              int64_t num_slots, int64_t h0, int64_t w0, int64_t h, int64_t w,
                              float* __restrict__ cache) {
  const int64_t total = num_slots * h * w;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t x = k % w, y = (k / w) % h, s = k / (w * h);
    int64_t y0, y1, x0, x1;
    float fy, fx;
    source_index(y, h0, h, y0, y1, fy);
    source_index(x, w0, w, x0, x1, fx);
    const uint8_t* frame = frames + slot_frames[s] * h0 * w0 * 3;
    const uint8_t *a = frame + (y0 * w0 + x0) * 3, *b = frame + (y0 * w0 + x1) * 3;
    const uint8_t *c = frame + (y1 * w0 + x0) * 3, *d = frame + (y1 * w0 + x1) * 3;
    for (int ch = 0; ch < 3; ++ch) {
      // vertical then horizontal, the order of the CPU kernel and the twin
      const float left = blend(static_cast<float>(a[ch]), 1.f - fy, static_cast<float>(c[ch]), fy);
      const float right = blend(static_cast<float>(b[ch]), 1.f - fy, static_cast<float>(d[ch]), fy);
      cache[((s * 3 + ch) * h + y) * w + x] = blend(left, 1.f - fx, right, fx);
    }
  }
}

__global__ void assemble_kernel(const float* __restrict__ cache, const int64_t* __restrict__ sample_slots, int64_t n,
                                int64_t h, int64_t w, float* __restrict__ inputs, float* __restrict__ gradients) {
  const int64_t plane = h * w, total = n * plane;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pix = k % plane, i = k / plane;
    const int64_t* sl = sample_slots + i * 5;
    for (int ch = 0; ch < 3; ++ch) {
      for (int block = 0; block < 3; ++block)
        inputs[(i * 9 + block * 3 + ch) * plane + pix] = __fadd_rn(__fmul_rn(cache[(sl[block] * 3 + ch) * plane + pix], 1.f / 127.5f), -1.f);
      gradients[(i * 3 + ch) * plane + pix] =
          fabsf(cache[(sl[3] * 3 + ch) * plane + pix] - cache[(sl[4] * 3 + ch) * plane + pix]);
    }
  }
}

}  // namespace

void prepare(const uint8_t* frames, int64_t h0, int64_t w0, const int64_t* slot_frames, int64_t num_slots,
             const int64_t* sample_slots, int64_t n, int64_t h, int64_t w, int64_t p, float* cache,
             float* inputs, float* gradients, float* weights, cudaStream_t s) {
  if (n == 0) return;
  resize_kernel<<<grid_for(num_slots * h * w), kThreads, 0, s>>>(frames, slot_frames, num_slots, h0, w0, h, w, cache);
  check(cudaGetLastError(), "prepare resize launch");
  assemble_kernel<<<grid_for(n * h * w), kThreads, 0, s>>>(cache, sample_slots, n, h, w, inputs, gradients);
  check(cudaGetLastError(), "prepare assemble launch");
  token_weights(gradients, weights, n, 3, h, w, p, s);
}

}  // namespace cuda
}  // namespace sdmae
