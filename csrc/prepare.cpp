// prepare: the fused front end. Two passes:
//   1. resize every needed source frame once into a planar float cache
//      (read T*H0*W0*3 bytes, write S*3*h*w floats, S = distinct frames used);
//   2. per sample and token row: write the 9 input channels and the 3
//      gradient channels, and reduce the gradient peaks of each token on the fly
//      (read 5 cache rows, write 12 rows; no second pass over the gradients).
#include <algorithm>
#include <cmath>
#include <vector>

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
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(w0 * 3));
#pragma omp for collapse(2) schedule(static)
    for (int64_t s = 0; s < num_slots; ++s) {
      for (int64_t y = 0; y < h; ++y) {
        const uint8_t* r0 = frames + (needed[s] * h0 + ty.i0[y]) * w0 * 3;
        const uint8_t* r1 = frames + (needed[s] * h0 + ty.i1[y]) * w0 * 3;
        const float b = ty.frac[y], a = 1.f - b;
        for (int64_t k = 0; k < w0 * 3; ++k) row[k] = static_cast<float>(r0[k]) * a + static_cast<float>(r1[k]) * b;
        float* dst = cached + s * 3 * plane + y * w;
        for (int64_t x = 0; x < w; ++x) {
          const float fb = tx.frac[x], fa = 1.f - fb;
          const float* left = row.data() + tx.i0[x] * 3;
          const float* right = row.data() + tx.i1[x] * 3;
          for (int64_t ch = 0; ch < 3; ++ch) dst[ch * plane + x] = left[ch] * fa + right[ch] * fb;
        }
      }
    }
  }

  // Pass 2: inputs, gradients and the token peaks, one token row at a time.
  const int64_t gh = h / p, gw = w / p;
#pragma omp parallel
  {
    std::vector<float> peak(static_cast<size_t>(3 * gw));
#pragma omp for collapse(2) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t r = 0; r < gh; ++r) {
        const int64_t* sl = slots.data() + i * 5;
        std::fill(peak.begin(), peak.end(), -__builtin_inff());
        for (int64_t y = r * p; y < (r + 1) * p; ++y) {
          for (int64_t ch = 0; ch < 3; ++ch) {
            for (int64_t block = 0; block < 3; ++block) {
              const float* src = cached + (sl[block] * 3 + ch) * plane + y * w;
              float* dst = inputs + ((i * 9 + block * 3 + ch) * h + y) * w;
#pragma omp simd
              for (int64_t x = 0; x < w; ++x) dst[x] = src[x] * (1.f / 127.5f) - 1.f;
            }
            const float* before = cached + (sl[3] * 3 + ch) * plane + y * w;
            const float* after = cached + (sl[4] * 3 + ch) * plane + y * w;
            float* grad = gradients + ((i * 3 + ch) * h + y) * w;
            float* pk = peak.data() + ch * gw;
            for (int64_t c0 = 0; c0 < gw; ++c0) {
              float best = pk[c0];
              for (int64_t x = c0 * p; x < (c0 + 1) * p; ++x) {
                const float g = std::fabs(before[x] - after[x]);
                grad[x] = g;
                best = std::max(best, g);
              }
              pk[c0] = best;
            }
          }
        }
        float* m = weights + (i * gh + r) * gw;
        for (int64_t c0 = 0; c0 < gw; ++c0) m[c0] = ((0.f + peak[c0]) + peak[gw + c0] + peak[2 * gw + c0]) / 3.f;
      }
    }
  }
  normalise_rows(weights, n, gh * gw);
}

}  // namespace sdmae
