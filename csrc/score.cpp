// score: the fused back end. One pass over the three prediction tensors
// (read 3*N*L*D floats) writes token errors, frame scores and the pixel map;
// the twin needs two squared-difference temporaries and several reductions.
#include <algorithm>
#include <vector>

#include "ops.h"

namespace sdmae {

void score(const float* target, const float* teacher, const float* student, const float* weights,
           int64_t n, int64_t l, int64_t c, int64_t p, int64_t h, int64_t w,
           float discrepancy_weight, float map_weight,
           float* token_error, float* token_discrepancy, float* frame, float* maps) {
  const int64_t d = p * p * c, gw = w / p;
  // Motion weight relative to the sample's most moving token, for the maps.
  std::vector<float> peak(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) peak[i] = *std::max_element(weights + i * l, weights + (i + 1) * l);

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
    for (int64_t py = 0; py < p; ++py) {
      float* dst = maps + (i * h + ty * p + py) * w + tx * p;
      for (int64_t px = 0; px < p; ++px) {
        const float* tk = te + (py * p + px) * c;
        const float* sk = st + (py * p + px) * c;
        float pixel_disc = 0.f;
        for (int64_t ch = 0; ch < c; ++ch) pixel_disc += (tk[ch] - sk[ch]) * (tk[ch] - sk[ch]);
        pixel_disc /= static_cast<float>(c);
        const float predicted = std::min(std::max(tk[c - 1], 0.f), 1.f);
        dst[px] = (map_weight * predicted + discrepancy_weight * pixel_disc) * relative;
      }
    }
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
