// prepare: the fused front end. Two passes:
//   1. resize every needed source frame once into a planar float cache
//      (read T*H0*W0*3 bytes, write S*3*h*w floats, S = distinct frames used);
//   2. per sample and token row: write the 9 input channels and the 3
//      gradient channels, and reduce the gradient peaks of each token on the fly
//      (read 5 cache rows, write 12 rows; no second pass over the gradients).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ops.h"

namespace sdmae {
namespace {

struct Table {
  std::vector<int64_t> i0, i1;
  std::vector<float> frac;
};

// Half-pixel centres, clamped at 0: the OpenCV / align_corners=False rule.
Table bilinear_table(int64_t n_in, int64_t n_out) {
  Table t;
  t.i0.resize(n_out);
  t.i1.resize(n_out);
  t.frac.resize(n_out);
  const double scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  for (int64_t i = 0; i < n_out; ++i) {
    const double src = std::max((static_cast<double>(i) + 0.5) * scale - 0.5, 0.0);
    const int64_t lo = std::min(static_cast<int64_t>(std::floor(src)), n_in - 1);
    t.i0[i] = lo;
    t.i1[i] = std::min(lo + 1, n_in - 1);
    t.frac[i] = static_cast<float>(src - static_cast<double>(lo));
  }
  return t;
}

inline int64_t clamp_frame(int64_t k, int64_t t) { return k < 0 ? 0 : (k >= t ? t - 1 : k); }

// The 12 output planes are written once and read next by the model, long after
// they have left the caches: non-temporal stores skip reading each line before
// writing it (a third of prepare's memory traffic at the Avenue size).
#if defined(__SSE2__)
inline bool aligned16(const float* a) { return (reinterpret_cast<uintptr_t>(a) & 15) == 0; }
#endif

// dst[x] = src[x] * scale + shift, x < n.
inline void affine_row(const float* src, float* dst, int64_t n, float scale, float shift) {
  int64_t x = 0;
#if defined(__SSE2__)
  for (; x < n && !aligned16(dst + x); ++x) dst[x] = src[x] * scale + shift;
  const __m128 vs = _mm_set1_ps(scale), vb = _mm_set1_ps(shift);
  for (; x + 4 <= n; x += 4) _mm_stream_ps(dst + x, _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(src + x), vs), vb));
#endif
  for (; x < n; ++x) dst[x] = src[x] * scale + shift;
}

// dst[x] = |a[x] - b[x]|, x < n.
inline void absdiff_row(const float* a, const float* b, float* dst, int64_t n) {
  int64_t x = 0;
#if defined(__SSE2__)
  for (; x < n && !aligned16(dst + x); ++x) dst[x] = std::fabs(a[x] - b[x]);
  const __m128 sign = _mm_set1_ps(-0.f);
  for (; x + 4 <= n; x += 4)
    _mm_stream_ps(dst + x, _mm_andnot_ps(sign, _mm_sub_ps(_mm_loadu_ps(a + x), _mm_loadu_ps(b + x))));
#endif
  for (; x < n; ++x) dst[x] = std::fabs(a[x] - b[x]);
}

}  // namespace

void prepare(const uint8_t* frames, int64_t t, int64_t h0, int64_t w0,
             const int64_t* centres, int64_t n, int64_t h, int64_t w, int64_t p,
             int64_t offset, int64_t step,
             float* inputs, float* gradients, float* weights) {
  // Which source frames are used, each given one cache slot.
  const int64_t shifts[5] = {-offset, 0, offset, -step, step};
  std::vector<int64_t> slot_of(t, -1), needed;
  std::vector<int64_t> slots(n * 5);
  for (int64_t i = 0; i < n; ++i) {
    for (int s = 0; s < 5; ++s) {
      const int64_t k = clamp_frame(centres[i] + shifts[s], t);
      if (slot_of[k] < 0) {
        slot_of[k] = static_cast<int64_t>(needed.size());
        needed.push_back(k);
      }
      slots[i * 5 + s] = slot_of[k];
    }
  }
  const int64_t num_slots = static_cast<int64_t>(needed.size());
  const int64_t plane = h * w;
  // The cache is reused across calls of the same thread (grow-only): a fresh
  // 100 MB allocation per call costs more in page faults and zero-filling than
  // the resize itself at the Avenue size.
  thread_local std::vector<float> cache;
  if (cache.size() < static_cast<size_t>(num_slots * 3 * plane)) cache.resize(static_cast<size_t>(num_slots * 3 * plane));
  float* const cached = cache.data();  // OpenMP workers must use the caller's buffer, not their own thread_local
  const Table ty = bilinear_table(h0, h), tx = bilinear_table(w0, w);

  // Pass 1: vertical then horizontal interpolation, uint8 HWC -> float CHW.
  // Where the width is kept (Avenue: 640 -> 640) the horizontal weights are 1
  // and 0, so the blended row is only split into its channels: the general
  // loop's index loads and second product made pass 1 ~3/4 of the kernel.
  const bool same_width = w0 == w;
#pragma omp parallel
  {
    std::vector<float> buffer(static_cast<size_t>(w0 * 3));
    float* __restrict__ row = buffer.data();  // uint8 reads may alias floats: say they do not
#pragma omp for collapse(2) schedule(static)
    for (int64_t s = 0; s < num_slots; ++s) {
      for (int64_t y = 0; y < h; ++y) {
        const uint8_t* __restrict__ r0 = frames + (needed[s] * h0 + ty.i0[y]) * w0 * 3;
        const uint8_t* __restrict__ r1 = frames + (needed[s] * h0 + ty.i1[y]) * w0 * 3;
        const float b = ty.frac[y], a = 1.f - b;
        for (int64_t k = 0; k < w0 * 3; ++k) row[k] = static_cast<float>(r0[k]) * a + static_cast<float>(r1[k]) * b;
        float* dst = cached + s * 3 * plane + y * w;
        if (same_width) {
          for (int64_t x = 0; x < w; ++x) {
            dst[x] = row[3 * x];
            dst[plane + x] = row[3 * x + 1];
            dst[2 * plane + x] = row[3 * x + 2];
          }
          continue;
        }
        for (int64_t x = 0; x < w; ++x) {
          const float fb = tx.frac[x], fa = 1.f - fb;
          const float* left = row + tx.i0[x] * 3;
          const float* right = row + tx.i1[x] * 3;
          for (int64_t ch = 0; ch < 3; ++ch) dst[ch * plane + x] = left[ch] * fa + right[ch] * fb;
        }
      }
    }
  }

  // Pass 2: inputs, gradients and the token peaks, one token row at a time.
  // Token rows outermost: consecutive samples read 4 of the same 5 cached
  // frames, so one band of p rows stays in cache across samples (sample-major,
  // each sample's 5 whole frames, ~12 MB at Avenue size, came from memory).
  const int64_t gh = h / p, gw = w / p;
#pragma omp parallel
  {
    std::vector<float> peak(static_cast<size_t>(3 * gw));
#pragma omp for collapse(2) schedule(static)
    for (int64_t r = 0; r < gh; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t* sl = slots.data() + i * 5;
        std::fill(peak.begin(), peak.end(), -__builtin_inff());
        for (int64_t y = r * p; y < (r + 1) * p; ++y) {
          for (int64_t ch = 0; ch < 3; ++ch) {
            for (int64_t block = 0; block < 3; ++block) {
              affine_row(cached + (sl[block] * 3 + ch) * plane + y * w,
                         inputs + ((i * 9 + block * 3 + ch) * h + y) * w, w, 1.f / 127.5f, -1.f);
            }
            const float* before = cached + (sl[3] * 3 + ch) * plane + y * w;
            const float* after = cached + (sl[4] * 3 + ch) * plane + y * w;
            absdiff_row(before, after, gradients + ((i * 3 + ch) * h + y) * w, w);
            // the peaks from the rows just read (in L1), not from the streamed gradient
            float* pk = peak.data() + ch * gw;
            for (int64_t c0 = 0; c0 < gw; ++c0) {
              float best = pk[c0];
              for (int64_t x = c0 * p; x < (c0 + 1) * p; ++x) best = std::max(best, std::fabs(before[x] - after[x]));
              pk[c0] = best;
            }
          }
        }
        float* m = weights + (i * gh + r) * gw;
        for (int64_t c0 = 0; c0 < gw; ++c0) m[c0] = ((0.f + peak[c0]) + peak[gw + c0] + peak[2 * gw + c0]) / 3.f;
      }
    }
#if defined(__SSE2__)
    _mm_sfence();  // streamed stores visible before the caller reads the outputs
#endif
  }
  normalise_rows(weights, n, gh * gw);
}

}  // namespace sdmae
