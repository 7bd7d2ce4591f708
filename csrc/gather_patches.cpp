// gather_patches: the patches of the visible tokens only, in the order a
// stride-p convolution reads them. Every (channel, patch row) is a contiguous
// run of p floats in x, so the kernel is a memcpy per run, bound by memory.
#include <cstring>

#include "ops.h"

namespace sdmae {

void gather_patches(const float* x, const int64_t* ids, float* out, int64_t n, int64_t c, int64_t h, int64_t w,
                    int64_t p, int64_t k) {
  const int64_t gw = w / p, d = c * p * p;
  // (n, k) pairs are independent and equally sized, so a static split balances.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t id = ids[i * k + j];
      const float* patch = x + (i * c * h + (id / gw) * p) * w + (id % gw) * p;
      float* dst = out + (i * k + j) * d;
      for (int64_t ch = 0; ch < c; ++ch) {
        for (int64_t py = 0; py < p; ++py) {
          std::memcpy(dst + (ch * p + py) * p, patch + (ch * h + py) * w, p * sizeof(float));
        }
      }
    }
  }
}

}  // namespace sdmae
