// score_passes on the GPU: one warp per token reduces its error and
// discrepancy in every pass and writes its pixels of the map. Frame scores
// follow on the host (sdmae.score.frame_scores, shared by every backend).
#include "ops_cuda.h"

namespace sdmae {
namespace cuda {
namespace {

__global__ void peak_kernel(const float* __restrict__ weights, int64_t l, float* __restrict__ peak) {
  __shared__ float best[kThreads];
  const float* row = weights + blockIdx.x * l;
  float local = -INFINITY;
  for (int64_t j = threadIdx.x; j < l; j += blockDim.x) local = fmaxf(local, row[j]);
  best[threadIdx.x] = local;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) best[threadIdx.x] = fmaxf(best[threadIdx.x], best[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x == 0) peak[blockIdx.x] = best[0];
}

// sdmae.score.judged_passes: 0 every pass, 1 where the token was visible, 2 hidden.
__device__ inline bool judged(int tokens, float hid) {
  return tokens == 0 || (tokens == 1 && hid == 0.f) || (tokens == 2 && hid != 0.f);
}

__global__ void token_kernel(const float* __restrict__ target, const float* __restrict__ teacher,
                             const float* __restrict__ student, const float* __restrict__ hidden,
                             const float* __restrict__ weights, const float* __restrict__ peak, int64_t k, int64_t n,
                             int64_t c, ScoreSpec spec, float* __restrict__ error,
                             float* __restrict__ discrepancy, float* __restrict__ maps) {
  const int lane = threadIdx.x % 32;
  const int64_t p = spec.patch, h = spec.height, w = spec.width;
  const int64_t l = (h / p) * (w / p), d = p * p * c, gw = w / p, per_pass = n * l;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
  const float inv_norm = 1.f / static_cast<float>(p * p * (c - 1 + spec.map_channel_weight));
  const float inv_range = 1.f / (1.f - spec.map_normal);
  for (int64_t idx = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; idx < n * l; idx += warps) {
    const float* tg = target + idx * d;
    float used = 0.f;
    for (int64_t pass = 0; pass < k; ++pass) {
      const int64_t at = pass * per_pass + idx;
      const float *te = teacher + at * d, *st = student + at * d;
      float e_sum = 0.f, q_sum = 0.f;
      for (int64_t j = lane; j < d; j += 32) {
        const float wgt = (j % c == c - 1) ? spec.map_channel_weight : 1.f;  // the last channel is the anomaly map
        const float e = tg[j] - te[j], q = te[j] - st[j];
        e_sum += wgt * e * e;
        q_sum += wgt * q * q;
      }
      for (int off = 16; off > 0; off /= 2) {
        e_sum += __shfl_down_sync(0xffffffffu, e_sum, off);
        q_sum += __shfl_down_sync(0xffffffffu, q_sum, off);
      }
      if (lane == 0) {  // lane 0 holds the sums
        error[at] = e_sum * inv_norm;
        discrepancy[at] = q_sum * inv_norm;
      }
      used += judged(spec.tokens, hidden[at]) ? 1.f : 0.f;
    }
    if (maps == nullptr) continue;
    const int64_t i = idx / l, tok = idx % l, ty = tok / gw, tx = tok % gw;
    const float relative = peak[i] > 0.f ? weights[idx] / peak[i] : 1.f;
    const float scale = used > 0.f ? relative / used : 0.f;
    for (int64_t q = lane; q < p * p; q += 32) {
      float value = 0.f;
      for (int64_t pass = 0; pass < k; ++pass) {
        if (!judged(spec.tokens, hidden[pass * per_pass + idx])) continue;
        const float *tk = teacher + (pass * per_pass + idx) * d + q * c, *sk = student + (pass * per_pass + idx) * d + q * c;
        float pixel_disc = 0.f;
        for (int64_t ch = 0; ch < c; ++ch) pixel_disc += (tk[ch] - sk[ch]) * (tk[ch] - sk[ch]);
        pixel_disc /= static_cast<float>(c);
        const float predicted = fminf(fmaxf((tk[c - 1] - spec.map_normal) * inv_range, 0.f), 1.f);
        value += spec.map_weight * predicted + spec.discrepancy_weight * pixel_disc;
      }
      maps[(i * h + ty * p + q / p) * w + tx * p + q % p] = value * scale;
    }
  }
}

}  // namespace

void score_passes(const float* target, const float* teacher, const float* student, const float* hidden,
                  const float* weights, int64_t k, int64_t n, int64_t c, const ScoreSpec& spec, float* error,
                  float* discrepancy, float* maps, cudaStream_t s) {
  if (n == 0) return;
  const int64_t l = (spec.height / spec.patch) * (spec.width / spec.patch);
  float* peak = nullptr;  // (N) the sample's largest motion weight, for the maps
  if (maps != nullptr) {
    check(cudaMallocAsync(&peak, sizeof(float) * n, s), "score workspace");
    peak_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(weights, l, peak);
    check(cudaGetLastError(), "score peak launch");
  }
  token_kernel<<<grid_for(n * l, kThreads / 32), kThreads, 0, s>>>(  // a warp per token
      target, teacher, student, hidden, weights, peak, k, n, c, spec, error, discrepancy, maps);
  check(cudaGetLastError(), "score token launch");
  if (peak != nullptr) check(cudaFreeAsync(peak, s), "score workspace free");
}

}  // namespace cuda
}  // namespace sdmae
