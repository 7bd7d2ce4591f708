// score_passes: the heavy half of the score. One pass over the prediction
// tensors of the K masked passes (read (2K + 1)*N*L*D floats) writes every
// pass's token errors and discrepancies and the pixel map; the twin needs
// squared-difference temporaries of every pass. Frame scores follow from the
// token values in sdmae.score.frame_scores, shared by every backend.
#include <algorithm>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "ops.h"

namespace sdmae {

namespace {

// One token's p*p pixels of the map from one pass, c channels a pixel: dst = or += value * scale.
void token_map(const float* te, const float* st, int64_t c, int64_t p, int64_t w, float scale, float map_low,
               float map_weight, float discrepancy_weight, bool accumulate, float* dst) {
  const float inv_c = 1.f / static_cast<float>(c), inv_range = 1.f / (1.f - map_low);
  for (int64_t py = 0; py < p; ++py, dst += w) {
    const float* tk = te + py * p * c;
    const float* sk = st + py * p * c;
    for (int64_t px = 0; px < p; ++px) {
      float pixel_disc = 0.f;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float q = tk[px * c + ch] - sk[px * c + ch];
        pixel_disc += q * q;
      }
      const float predicted = std::min(std::max((tk[px * c + c - 1] - map_low) * inv_range, 0.f), 1.f);
      const float value = (map_weight * predicted + discrepancy_weight * pixel_disc * inv_c) * scale;
      dst[px] = accumulate ? dst[px] + value : value;
    }
  }
}

#if defined(__SSE2__)
// The same for c == 4 (every test-time map: RGB + the predicted map), four
// pixels at a time: their 4 x 4 channel values are transposed so that one
// vector holds one channel of four pixels. Scalar, the loop above was ~3/4 of
// the whole kernel's time. SSE2 is part of the x86-64 baseline.
void token_map_c4(const float* te, const float* st, int64_t p, int64_t w, float scale, float map_low,
                  float map_weight, float discrepancy_weight, bool accumulate, float* dst) {
  const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1.f), mw = _mm_set1_ps(map_weight),
               dw = _mm_set1_ps(discrepancy_weight * 0.25f), sc = _mm_set1_ps(scale),
               low = _mm_set1_ps(map_low), inv_range = _mm_set1_ps(1.f / (1.f - map_low));
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
      const __m128 predicted = _mm_min_ps(_mm_max_ps(_mm_mul_ps(_mm_sub_ps(t3, low), inv_range), zero), one);
      __m128 pixel = _mm_mul_ps(_mm_add_ps(_mm_mul_ps(mw, predicted), _mm_mul_ps(dw, disc)), sc);
      if (accumulate) pixel = _mm_add_ps(pixel, _mm_loadu_ps(dst + px));
      _mm_storeu_ps(dst + px, pixel);
    }
  }
}
#endif

// Channel-weighted mean squared differences of one token: all values weigh 1
// except the last channel's (the anomaly map), which weighs `a`.
inline void token_errors(const float* tg, const float* te, const float* st, int64_t d, int64_t c, float a,
                         float inv_norm, float* err, float* disc) {
  float e_all = 0.f, q_all = 0.f;
#pragma omp simd reduction(+ : e_all, q_all)
  for (int64_t j = 0; j < d; ++j) {
    const float e = tg[j] - te[j], q = te[j] - st[j];
    e_all += e * e;
    q_all += q * q;
  }
  float e_map = 0.f, q_map = 0.f;
  for (int64_t j = c - 1; j < d; j += c) {
    const float e = tg[j] - te[j], q = te[j] - st[j];
    e_map += e * e;
    q_map += q * q;
  }
  *err = (e_all + (a - 1.f) * e_map) * inv_norm;
  *disc = (q_all + (a - 1.f) * q_map) * inv_norm;
}

}  // namespace

void score_passes(const float* target, const float* teacher, const float* student, const float* hidden,
                  const float* weights, int64_t k, int64_t n, int64_t c, const ScoreSpec& spec, float* error,
                  float* discrepancy, float* maps) {
  const int64_t p = spec.patch, h = spec.height, w = spec.width;
  const int64_t l = (h / p) * (w / p), d = p * p * c, gw = w / p, per_pass = n * l;
  const float inv_norm = 1.f / static_cast<float>(p * p * (c - 1 + spec.map_channel_weight));
  // Motion weight relative to the sample's most moving token, for the maps.
  std::vector<float> peak(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) peak[i] = *std::max_element(weights + i * l, weights + (i + 1) * l);
#if defined(__SSE2__)
  const bool four_at_a_time = c == 4 && p % 4 == 0;
#else
  const bool four_at_a_time = false;
#endif
  auto judged = [&](int64_t pass, int64_t idx) {  // sdmae.score.judged_passes: 0 all, 1 visible, 2 hidden
    const float hid = hidden[pass * per_pass + idx];
    return spec.tokens == 0 || (spec.tokens == 1 && hid == 0.f) || (spec.tokens == 2 && hid != 0.f);
  };

#pragma omp parallel for schedule(static)
  for (int64_t idx = 0; idx < n * l; ++idx) {
    const float* tg = target + idx * d;
    float used = 0.f;
    for (int64_t pass = 0; pass < k; ++pass) {
      const int64_t at = pass * per_pass + idx;
      token_errors(tg, teacher + at * d, student + at * d, d, c, spec.map_channel_weight, inv_norm, error + at,
                   discrepancy + at);
      used += judged(pass, idx) ? 1.f : 0.f;
    }
    if (maps == nullptr) continue;

    const int64_t i = idx / l, tok = idx % l, ty = tok / gw, tx = tok % gw;
    const float relative = peak[i] > 0.f ? weights[idx] / peak[i] : 1.f;
    float* dst = maps + (i * h + ty * p) * w + tx * p;
    if (used == 0.f) {  // no judged pass: a zero map
      for (int64_t py = 0; py < p; ++py) std::fill(dst + py * w, dst + py * w + p, 0.f);
      continue;
    }
    const float scale = relative / used;
    bool accumulate = false;
    for (int64_t pass = 0; pass < k; ++pass) {
      if (!judged(pass, idx)) continue;
      const float* te = teacher + (pass * per_pass + idx) * d;
      const float* st = student + (pass * per_pass + idx) * d;
#if defined(__SSE2__)
      if (four_at_a_time) {
        token_map_c4(te, st, p, w, scale, spec.map_normal, spec.map_weight, spec.discrepancy_weight, accumulate, dst);
        accumulate = true;
        continue;
      }
#endif
      token_map(te, st, c, p, w, scale, spec.map_normal, spec.map_weight, spec.discrepancy_weight, accumulate, dst);
      accumulate = true;
    }
  }
}

}  // namespace sdmae
