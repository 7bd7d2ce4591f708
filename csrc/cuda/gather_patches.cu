// gather_patches on the GPU: one thread per output element, so writes
// coalesce; neighbouring threads read the same p-float run of x, so reads
// coalesce too, in segments of p.
#include "ops_cuda.h"

namespace sdmae {
namespace cuda {
namespace {

__global__ void gather_patches_kernel(const float* __restrict__ x, const int64_t* __restrict__ ids,
                                      float* __restrict__ out, int64_t total, int64_t c, int64_t h, int64_t w,
                                      int64_t p, int64_t k) {
  const int64_t gw = w / p, d = c * p * p;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = e % d, token = e / d, i = token / k;  // token indexes the flattened (N, K) ids
    const int64_t ch = j / (p * p), py = (j / p) % p, px = j % p;
    const int64_t id = ids[token];
    const int64_t y = (id / gw) * p + py, xx = (id % gw) * p + px;
    out[e] = x[((i * c + ch) * h + y) * w + xx];
  }
}

int grid_for(int64_t total) {
  const int64_t blocks = (total + 255) / 256;
  return static_cast<int>(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

}  // namespace

void gather_patches(const float* x, const int64_t* ids, float* out, int64_t n, int64_t c, int64_t h, int64_t w,
                    int64_t p, int64_t k, cudaStream_t s) {
  const int64_t total = n * k * c * p * p;
  if (total == 0) return;
  gather_patches_kernel<<<grid_for(total), 256, 0, s>>>(x, ids, out, total, c, h, w, p, k);
  check(cudaGetLastError(), "gather_patches launch");
}

}  // namespace cuda
}  // namespace sdmae
