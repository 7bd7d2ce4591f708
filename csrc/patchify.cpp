// patchify / unpatchify: a pure permutation, so the loops follow the output
// order and let the reads stride; both are bound by memory bandwidth.
#include "ops.h"

namespace sdmae {

void patchify(const float* x, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p) {
  const int64_t gh = h / p, gw = w / p, d = p * p * c;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ty = 0; ty < gh; ++ty) {
      for (int64_t tx = 0; tx < gw; ++tx) {
        float* token = out + ((i * gh + ty) * gw + tx) * d;
        for (int64_t py = 0; py < p; ++py) {
          for (int64_t px = 0; px < p; ++px) {
            const float* src = x + (i * c * h + ty * p + py) * w + tx * p + px;
            float* dst = token + (py * p + px) * c;
            for (int64_t ch = 0; ch < c; ++ch) dst[ch] = src[ch * h * w];
          }
        }
      }
    }
  }
}

void unpatchify(const float* t, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p) {
  const int64_t gh = h / p, gw = w / p, d = p * p * c;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t y = 0; y < h; ++y) {
        const int64_t ty = y / p, py = y % p;
        float* dst = out + ((i * c + ch) * h + y) * w;
        for (int64_t x = 0; x < w; ++x) {
          const int64_t tx = x / p, px = x % p;
          dst[x] = t[((i * gh + ty) * gw + tx) * d + (py * p + px) * c + ch];
        }
      }
    }
  }
}

}  // namespace sdmae
