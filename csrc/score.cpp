// score: the fused back end. One pass over the three prediction tensors
// (read 3*N*L*D floats) writes token errors, frame scores and the pixel map;
// the twin needs two squared-difference temporaries and several reductions.
#include <algorithm>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "ops.h"

namespace sdmae {

namespace {

// One token's p*p pixels of the map, c channels a pixel.
void token_map(const float* te, const float* st, int64_t c, int64_t p, int64_t w, float relative,
               float map_weight, float discrepancy_weight, float* dst) {
  const float inv_c = 1.f / static_cast<float>(c);
  for (int64_t py = 0; py < p; ++py, dst += w) {
    const float* tk = te + py * p * c;
    const float* sk = st + py * p * c;
    for (int64_t px = 0; px < p; ++px) {
      float pixel_disc = 0.f;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float q = tk[px * c + ch] - sk[px * c + ch];
        pixel_disc += q * q;
      }
      const float predicted = std::min(std::max(tk[px * c + c - 1], 0.f), 1.f);
      dst[px] = (map_weight * predicted + discrepancy_weight * pixel_disc * inv_c) * relative;
    }
  }
}

#if defined(__SSE2__)
// The same for c == 4 (every test-time map: RGB + the predicted map), four
// pixels at a time: their 4 x 4 channel values are transposed so that one
// vector holds one channel of four pixels. Scalar, the loop above was ~3/4 of
// the whole kernel's time. SSE2 is part of the x86-64 baseline.
void token_map_c4(const float* te, const float* st, int64_t p, int64_t w, float relative,
                  float map_weight, float discrepancy_weight, float* dst) {
  const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.f), mw = _mm_set1_ps(map_weight),
               dw = _mm_set1_ps(discrepancy_weight * 0.25f), rel = _mm_set1_ps(relative);
  for (int64_t py = 0; py < p; ++py, dst += w) {
    for (int64_t px = 0; px < p; px += 4) {
      const float* tk = te + (py * p + px) * 4;
      const float* sk = st + (py * p + px) * 4;
      __m128 t0 = _mm_loadu_ps(tk), t1 = _mm_loadu_ps(tk + 4), t2 = _mm_loadu_ps(tk + 8), t3 = _mm_loadu_ps(tk + 12);
      __m128 q0 = _mm_sub_ps(t0, _mm_loadu_ps(sk)), q1 = _mm_sub_ps(t1, _mm_loadu_ps(sk + 4)),
             q2 = _mm_sub_ps(t2, _mm_loadu_ps(sk + 8)), q3 = _mm_sub_ps(t3, _mm_loadu_ps(sk + 12));
      q0 = _mm_mul_ps(q0, q0);
      q1 = _mm_mul_ps(q1, q1);
      q2 = _mm_mul_ps(q2, q2);
      q3 = _mm_mul_ps(q3, q3);
      _MM_TRANSPOSE4_PS(q0, q1, q2, q3);  // q_k: channel k of the four pixels
      const __m128 disc = _mm_add_ps(_mm_add_ps(q0, q1), _mm_add_ps(q2, q3));
      _MM_TRANSPOSE4_PS(t0, t1, t2, t3);  // t3: the predicted map channel
      const __m128 predicted = _mm_min_ps(_mm_max_ps(t3, zero), one);
      const __m128 pixel = _mm_mul_ps(_mm_add_ps(_mm_mul_ps(mw, predicted), _mm_mul_ps(dw, disc)), rel);
      _mm_storeu_ps(dst + px, pixel);
    }
  }
}
#endif

}  // namespace

void score(const float* target, const float* teacher, const float* student, const float* weights,
           int64_t n, int64_t l, int64_t c, int64_t p, int64_t h, int64_t w,
           float discrepancy_weight, float map_weight,
           float* token_error, float* token_discrepancy, float* frame, float* maps) {
  const int64_t d = p * p * c, gw = w / p;
  // Motion weight relative to the sample's most moving token, for the maps.
  std::vector<float> peak(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) peak[i] = *std::max_element(weights + i * l, weights + (i + 1) * l);
#if defined(__SSE2__)
  const bool four_at_a_time = c == 4 && p % 4 == 0;
#else
  const bool four_at_a_time = false;
#endif

#pragma omp parallel for schedule(static)
  for (int64_t idx = 0; idx < n * l; ++idx) {
    const float* tg = target + idx * d;
    const float* te = teacher + idx * d;
    const float* st = student + idx * d;
    float err = 0.f, disc = 0.f;
#pragma omp simd reduction(+ : err, disc)
    for (int64_t j = 0; j < d; ++j) {
      const float e = tg[j] - te[j], q = te[j] - st[j];
      err += e * e;
      disc += q * q;
    }
    token_error[idx] = err / static_cast<float>(d);
    token_discrepancy[idx] = disc / static_cast<float>(d);
    if (maps == nullptr) continue;

    const int64_t i = idx / l, tok = idx % l, ty = tok / gw, tx = tok % gw;
    const float relative = peak[i] > 0.f ? weights[idx] / peak[i] : 1.f;
    float* dst = maps + (i * h + ty * p) * w + tx * p;
#if defined(__SSE2__)
    if (four_at_a_time) {
      token_map_c4(te, st, p, w, relative, map_weight, discrepancy_weight, dst);
      continue;
    }
#endif
    token_map(te, st, c, p, w, relative, map_weight, discrepancy_weight, dst);
  }

  for (int64_t i = 0; i < n; ++i) {
    double total = 0.0;
    for (int64_t j = i * l; j < (i + 1) * l; ++j)
      total += static_cast<double>(weights[j]) *
               (static_cast<double>(token_error[j]) + discrepancy_weight * static_cast<double>(token_discrepancy[j]));
    frame[i] = static_cast<float>(total);
  }
}

}  // namespace sdmae
