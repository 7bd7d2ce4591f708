// Flat CPU kernels of sdmae. Callers (module.cpp) pass contiguous, correctly
// typed, size-checked buffers; the kernels do no checking of their own.
// Shapes: N batch, C channels, H/W image size, p patch, L tokens, T frames.
#pragma once
#include <cstdint>

#include "score_spec.h"

namespace sdmae {

// x (N, C, H, W) -> out (N, L, p*p*C), token order (row, column, channel).
void patchify(const float* x, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p);
// x (N, C, H, W), ids (N, K) in [0, L) -> out (N, K, C*p*p), patch order
// (channel, row, column): that of a stride-p Conv2d weight, not patchify's.
void gather_patches(const float* x, const int64_t* ids, float* out, int64_t n, int64_t c, int64_t h, int64_t w,
                    int64_t p, int64_t k);
// g (N, C, H, W) -> out (N, L): mean_c max_patch g, normalised to sum 1.
void token_weights(const float* g, float* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p);

// frames (T, H0, W0, 3) uint8 and centres (N,) in [0, T) ->
// inputs (N, 9, h, w), gradients (N, 3, h, w), weights (N, L).
void prepare(const uint8_t* frames, int64_t t, int64_t h0, int64_t w0,
             const int64_t* centres, int64_t n, int64_t h, int64_t w, int64_t p,
             int64_t offset, int64_t step,
             float* inputs, float* gradients, float* weights);

// target (N, L, p*p*C), teacher/student (K, N, L, p*p*C) from K masked passes,
// hidden (K, N, L) 1 = hidden in that pass, weights (N, L) motion weights ->
// error, discrepancy (K, N, L), maps (N, h, w) or null. See
// sdmae.reference.score_passes for the formulas.
void score_passes(const float* target, const float* teacher, const float* student, const float* hidden,
                  const float* weights, int64_t k, int64_t n, int64_t c, const ScoreSpec& spec, float* error,
                  float* discrepancy, float* maps);

// Normalise m (N, L) in place to rows summing to 1 (uniform when a row sums to <= 0).
void normalise_rows(float* m, int64_t n, int64_t l);

}  // namespace sdmae
