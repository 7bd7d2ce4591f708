// score on the GPU: one warp per token reduces its error and discrepancy and
// writes its pixels of the map; a block per sample then reduces the frame score.
#include "ops_cuda.h"

namespace sdmae {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void peak_kernel(const float* __restrict__ weights, int64_t l, float* __restrict__ peak) {
  __shared__ float best[kThreads];
  const float* row = weights + blockIdx.x * l;
  float local = -INFINITY;
  for (int64_t j = threadIdx.x; j < l; j += blockDim.x) local = fmaxf(local, row[j]);
  best[threadIdx.x] = local;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) best[threadIdx.x] = fmaxf(best[threadIdx.x], best[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x == 0) peak[blockIdx.x] = best[0];
}

__global__ void token_kernel(const float* __restrict__ target, const float* __restrict__ teacher,
                             const float* __restrict__ student, const float* __restrict__ weights,
                             const float* __restrict__ peak, int64_t n, int64_t l, int64_t c, int64_t p, int64_t h,
                             int64_t w, float discrepancy_weight, float map_weight, float* __restrict__ token_error,
                             float* __restrict__ token_discrepancy, float* __restrict__ maps) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
  const int64_t d = p * p * c, gw = w / p;
  for (int64_t idx = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; idx < n * l; idx += warps) {
    const float *tg = target + idx * d, *te = teacher + idx * d, *st = student + idx * d;
    float err = 0.f, disc = 0.f;
    for (int64_t j = lane; j < d; j += 32) {
      const float e = tg[j] - te[j], q = te[j] - st[j];
      err += e * e;
      disc += q * q;
    }
    for (int off = 16; off > 0; off /= 2) {
      err += __shfl_down_sync(0xffffffffu, err, off);
      disc += __shfl_down_sync(0xffffffffu, disc, off);
    }
    if (lane == 0) {
      token_error[idx] = err / static_cast<float>(d);
      token_discrepancy[idx] = disc / static_cast<float>(d);
    }
    if (maps == nullptr) continue;
    const int64_t i = idx / l, tok = idx % l, ty = tok / gw, tx = tok % gw;
    const float relative = peak[i] > 0.f ? weights[idx] / peak[i] : 1.f;
    for (int64_t k = lane; k < p * p; k += 32) {
      const float *tk = te + k * c, *sk = st + k * c;
      float pixel_disc = 0.f;
      for (int64_t ch = 0; ch < c; ++ch) pixel_disc += (tk[ch] - sk[ch]) * (tk[ch] - sk[ch]);
      pixel_disc /= static_cast<float>(c);
      const float predicted = fminf(fmaxf(tk[c - 1], 0.f), 1.f);
      maps[(i * h + ty * p + k / p) * w + tx * p + k % p] =
          (map_weight * predicted + discrepancy_weight * pixel_disc) * relative;
    }
  }
}

__global__ void frame_kernel(const float* __restrict__ weights, const float* __restrict__ token_error,
                             const float* __restrict__ token_discrepancy, int64_t l, float discrepancy_weight,
                             float* __restrict__ frame) {
  __shared__ double partial[kThreads];
  const int64_t base = blockIdx.x * l;
  double local = 0.0;
  for (int64_t j = threadIdx.x; j < l; j += blockDim.x)
    local += static_cast<double>(weights[base + j]) *
             (static_cast<double>(token_error[base + j]) + discrepancy_weight * static_cast<double>(token_discrepancy[base + j]));
  partial[threadIdx.x] = local;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) frame[blockIdx.x] = static_cast<float>(partial[0]);
}

}  // namespace

void score(const float* target, const float* teacher, const float* student, const float* weights,
           int64_t n, int64_t l, int64_t c, int64_t p, int64_t h, int64_t w,
           float discrepancy_weight, float map_weight,
           float* token_error, float* token_discrepancy, float* frame, float* maps, cudaStream_t s) {
  if (n == 0) return;
  float* peak = nullptr;
  if (maps != nullptr) {
    check(cudaMallocAsync(&peak, sizeof(float) * n, s), "score workspace");
    peak_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(weights, l, peak);
    check(cudaGetLastError(), "score peak launch");
  }
  const int64_t warps_per_block = kThreads / 32;
  int64_t blocks = (n * l + warps_per_block - 1) / warps_per_block;
  blocks = blocks < 65535 * 8 ? blocks : 65535 * 8;
  token_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(target, teacher, student, weights, peak, n, l, c, p,
                                                                  h, w, discrepancy_weight, map_weight, token_error,
                                                                  token_discrepancy, maps);
  check(cudaGetLastError(), "score token launch");
  frame_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(weights, token_error, token_discrepancy, l,
                                                             discrepancy_weight, frame);
  check(cudaGetLastError(), "score frame launch");
  if (peak != nullptr) check(cudaFreeAsync(peak, s), "score workspace free");
}

}  // namespace cuda
}  // namespace sdmae
