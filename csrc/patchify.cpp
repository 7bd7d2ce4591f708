// patchify: a pure permutation, so the loops follow the output order and let
// the reads stride; it is bound by memory bandwidth.
#include <cstdint>

#include "ops.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace sdmae {

#if defined(__SSE2__)
namespace {

// c == 4 (the detector's target every batch: RGB + the zero map channel), four
// pixels at a time: one vector per channel plane, transposed into one vector
// per pixel. The general loop below gathers one float per plane per step.
// The output is streamed past the caches (it is read next by score, long after).
void patchify_c4(const float* x, float* out, int64_t n, int64_t h, int64_t w, int64_t p) {
  const int64_t gh = h / p, gw = w / p, d = p * p * 4, plane = h * w;
  const bool aligned = (reinterpret_cast<uintptr_t>(out) & 15) == 0;  // then every pixel is
#pragma omp parallel
  {
#pragma omp for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t ty = 0; ty < gh; ++ty) {
        for (int64_t tx = 0; tx < gw; ++tx) {
          float* token = out + ((i * gh + ty) * gw + tx) * d;
          for (int64_t py = 0; py < p; ++py) {
            const float* src = x + (i * 4 * h + ty * p + py) * w + tx * p;
            float* dst = token + py * p * 4;
            for (int64_t px = 0; px < p; px += 4) {
              __m128 c0 = _mm_loadu_ps(src + px), c1 = _mm_loadu_ps(src + plane + px),
                     c2 = _mm_loadu_ps(src + 2 * plane + px), c3 = _mm_loadu_ps(src + 3 * plane + px);
              _MM_TRANSPOSE4_PS(c0, c1, c2, c3);  // c_k: the 4 channels of pixel px + k
              float* o = dst + px * 4;
              if (aligned) {
                _mm_stream_ps(o, c0);
                _mm_stream_ps(o + 4, c1);
                _mm_stream_ps(o + 8, c2);
                _mm_stream_ps(o + 12, c3);
              } else {
                _mm_storeu_ps(o, c0);
                _mm_storeu_ps(o + 4, c1);
                _mm_storeu_ps(o + 8, c2);
                _mm_storeu_ps(o + 12, c3);
              }
            }
          }
        }
      }
    }
    _mm_sfence();
  }
}

}  // namespace
#endif

void patchify(const float* x, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p) {
#if defined(__SSE2__)
  if (c == 4 && p % 4 == 0) return patchify_c4(x, out, n, h, w, p);
#endif
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

}  // namespace sdmae
