// patchify on the GPU: one thread per output element, so writes coalesce;
// the permutation makes the reads stride.
#include "ops_cuda.h"

namespace sdmae {
namespace cuda {
namespace {

__global__ void patchify_kernel(const float* __restrict__ x, float* __restrict__ out, int64_t total, int64_t c,
                                int64_t h, int64_t w, int64_t p) {
  const int64_t gw = w / p, gh = h / p, d = p * p * c;
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < total; k += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = k % d, token = (k / d) % (gh * gw), i = k / (d * gh * gw);
    const int64_t ch = j % c, px = (j / c) % p, py = j / (c * p);
    const int64_t y = (token / gw) * p + py, xx = (token % gw) * p + px;
    out[k] = x[((i * c + ch) * h + y) * w + xx];
  }
}

}  // namespace

void patchify(const float* x, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, cudaStream_t s) {
  const int64_t total = n * c * h * w;
  if (total == 0) return;
  patchify_kernel<<<grid_for(total), kThreads, 0, s>>>(x, out, total, c, h, w, p);
  check(cudaGetLastError(), "patchify launch");
}

}  // namespace cuda
}  // namespace sdmae
