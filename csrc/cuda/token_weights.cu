// token_weights on the GPU: one block per sample computes every token's
// channel-mean of patch maxima, then reduces their sum in shared memory and
// normalises (uniform weights when a sample has no motion).
#include "ops_cuda.h"

namespace sdmae {
namespace cuda {
namespace {

__global__ void token_weights_kernel(const float* __restrict__ g, float* __restrict__ out, int64_t c, int64_t h,
                                     int64_t w, int64_t p) {
  const int64_t i = blockIdx.x, gw = w / p, l = (h / p) * gw;
  const float* sample = g + i * c * h * w;
  float* row = out + i * l;
  __shared__ double partial[kThreads];
  double local = 0.0;
  for (int64_t tok = threadIdx.x; tok < l; tok += blockDim.x) {
    const int64_t y0 = (tok / gw) * p, x0 = (tok % gw) * p;
    float m = 0.f;
    for (int64_t ch = 0; ch < c; ++ch) {
      float best = -INFINITY;
      for (int64_t py = 0; py < p; ++py)
        for (int64_t px = 0; px < p; ++px) best = fmaxf(best, sample[(ch * h + y0 + py) * w + x0 + px]);
      m += best;
    }
    m /= static_cast<float>(c);
    row[tok] = m;
    local += m;
  }
  partial[threadIdx.x] = local;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float sum = static_cast<float>(partial[0]);
  for (int64_t tok = threadIdx.x; tok < l; tok += blockDim.x)
    row[tok] = sum > 0.f ? row[tok] / sum : 1.f / static_cast<float>(l);
}

}  // namespace

void token_weights(const float* g, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s) {
  if (n == 0) return;
  token_weights_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(g, out, c, h, w, p);
  check(cudaGetLastError(), "token_weights launch");
}

}  // namespace cuda
}  // namespace sdmae
