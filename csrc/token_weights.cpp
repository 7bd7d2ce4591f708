// token_weights: one pass over the gradients (read N*C*H*W floats, write N*L).
#include <algorithm>
#include <vector>

#include "ops.h"

namespace sdmae {

void normalise_rows(float* m, int64_t n, int64_t l) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float* row = m + i * l;
    double total = 0.0;
    for (int64_t j = 0; j < l; ++j) total += row[j];
    const float sum = static_cast<float>(total);
    if (sum > 0.f) {
      for (int64_t j = 0; j < l; ++j) row[j] = row[j] / sum;
    } else {  // no motion (or NaN): every token counts the same
      const float uniform = 1.f / static_cast<float>(l);
      for (int64_t j = 0; j < l; ++j) row[j] = uniform;
    }
  }
}

void token_weights(const float* g, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p) {
  const int64_t gh = h / p, gw = w / p;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ty = 0; ty < gh; ++ty) {
      float* m = out + (i * gh + ty) * gw;
      std::fill(m, m + gw, 0.f);
      std::vector<float> peak(gw);
      for (int64_t ch = 0; ch < c; ++ch) {
        std::fill(peak.begin(), peak.end(), -__builtin_inff());
        for (int64_t py = 0; py < p; ++py) {
          const float* row = g + ((i * c + ch) * h + ty * p + py) * w;
          for (int64_t tx = 0; tx < gw; ++tx) {
            float best = peak[tx];
            for (int64_t px = 0; px < p; ++px) best = std::max(best, row[tx * p + px]);
            peak[tx] = best;
          }
        }
        for (int64_t tx = 0; tx < gw; ++tx) m[tx] += peak[tx];
      }
      for (int64_t tx = 0; tx < gw; ++tx) m[tx] /= static_cast<float>(c);
    }
  }
  normalise_rows(out, n, gh * gw);
}

}  // namespace sdmae
