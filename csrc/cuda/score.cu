// score on the GPU: one warp per token reduces its error and discrepancy and
// writes its pixels of the map; a block per sample then reduces the frame score.
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

__device__ inline bool selected(int tokens, float hid) {
  return tokens == 0 || (tokens == 1 && hid == 0.f) || (tokens == 2 && hid != 0.f);
}

__global__ void token_kernel(const float* __restrict__ target, const float* __restrict__ teacher,
                             const float* __restrict__ student, const float* __restrict__ hidden,
                             const float* __restrict__ weights, const float* __restrict__ peak, int64_t k, int64_t n,
                             int64_t l, int64_t c, int64_t p, int64_t h, int64_t w, float discrepancy_weight,
                             float map_channel_weight, float map_low, int tokens, float map_weight,
                             float* __restrict__ token_error, float* __restrict__ token_discrepancy,
                             float* __restrict__ count, float* __restrict__ maps) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
  const int64_t d = p * p * c, gw = w / p, per_pass = n * l;
  const float inv_norm = 1.f / static_cast<float>(p * p * (c - 1 + map_channel_weight));
  const float inv_range = 1.f / (1.f - map_low);
  for (int64_t idx = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; idx < n * l; idx += warps) {
    const float* tg = target + idx * d;
    float err = 0.f, disc = 0.f, used = 0.f;
    for (int64_t pass = 0; pass < k; ++pass) {
      if (!selected(tokens, hidden[pass * per_pass + idx])) continue;
      const float *te = teacher + (pass * per_pass + idx) * d, *st = student + (pass * per_pass + idx) * d;
      float e_sum = 0.f, q_sum = 0.f;
      for (int64_t j = lane; j < d; j += 32) {
        const float wgt = (j % c == c - 1) ? map_channel_weight : 1.f;  // the last channel is the anomaly map
        const float e = tg[j] - te[j], q = te[j] - st[j];
        e_sum += wgt * e * e;
        q_sum += wgt * q * q;
      }
      for (int off = 16; off > 0; off /= 2) {
        e_sum += __shfl_down_sync(0xffffffffu, e_sum, off);
        q_sum += __shfl_down_sync(0xffffffffu, q_sum, off);
      }
      err += e_sum * inv_norm;  // lane 0 holds the sums
      disc += q_sum * inv_norm;
      used += 1.f;
    }
    if (lane == 0) {
      token_error[idx] = used > 0.f ? err / used : 0.f;
      token_discrepancy[idx] = used > 0.f ? disc / used : 0.f;
      count[idx] = used;
    }
    if (maps == nullptr) continue;
    const int64_t i = idx / l, tok = idx % l, ty = tok / gw, tx = tok % gw;
    const float relative = peak[i] > 0.f ? weights[idx] / peak[i] : 1.f;
    const float scale = used > 0.f ? relative / used : 0.f;
    for (int64_t q = lane; q < p * p; q += 32) {
      float value = 0.f;
      for (int64_t pass = 0; pass < k; ++pass) {
        if (!selected(tokens, hidden[pass * per_pass + idx])) continue;
        const float *tk = teacher + (pass * per_pass + idx) * d + q * c, *sk = student + (pass * per_pass + idx) * d + q * c;
        float pixel_disc = 0.f;
        for (int64_t ch = 0; ch < c; ++ch) pixel_disc += (tk[ch] - sk[ch]) * (tk[ch] - sk[ch]);
        pixel_disc /= static_cast<float>(c);
        const float predicted = fminf(fmaxf((tk[c - 1] - map_low) * inv_range, 0.f), 1.f);
        value += map_weight * predicted + discrepancy_weight * pixel_disc;
      }
      maps[(i * h + ty * p + q / p) * w + tx * p + q % p] = value * scale;
    }
  }
}

// One block per sample. frame_top == 0: the (weighted) mean of the token scores;
// k >= 1: the mean of the k largest relative scores, found as k block maxima, each
// taken out of `scratch` (N*L floats) before the next (k is a few per cent of L).
__global__ void frame_kernel(const float* __restrict__ weights, const float* __restrict__ token_error,
                             const float* __restrict__ token_discrepancy, const float* __restrict__ count, int64_t l,
                             float discrepancy_weight, bool uniform, int64_t frame_top, float* __restrict__ scratch,
                             float* __restrict__ frame) {
  __shared__ double total[kThreads], mass[kThreads], top[kThreads];
  __shared__ int64_t where[kThreads];
  const int64_t base = blockIdx.x * l;
  double t = 0.0, m_sum = 0.0, m_top = 0.0;
  for (int64_t j = threadIdx.x; j < l; j += blockDim.x) {
    const double m = count[base + j] > 0.f ? (uniform ? 1.0 : static_cast<double>(weights[base + j])) : 0.0;
    m_sum += m;
    m_top = fmax(m_top, m);
    t += m * (static_cast<double>(token_error[base + j]) +
              discrepancy_weight * static_cast<double>(token_discrepancy[base + j]));
  }
  total[threadIdx.x] = t;
  mass[threadIdx.x] = m_sum;
  top[threadIdx.x] = m_top;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      total[threadIdx.x] += total[threadIdx.x + stride];
      mass[threadIdx.x] += mass[threadIdx.x + stride];
      top[threadIdx.x] = fmax(top[threadIdx.x], top[threadIdx.x + stride]);
    }
    __syncthreads();
  }
  if (frame_top == 0) {
    if (threadIdx.x == 0) frame[blockIdx.x] = mass[0] > 0.0 ? static_cast<float>(total[0] / mass[0]) : 0.f;
    return;
  }
  const double peak_weight = top[0];
  __syncthreads();
  for (int64_t j = threadIdx.x; j < l; j += blockDim.x) {  // token scores are >= 0; unjudged tokens count 0
    const double m = count[base + j] > 0.f ? (uniform ? 1.0 : static_cast<double>(weights[base + j])) : 0.0;
    scratch[base + j] = peak_weight > 0.0 ? static_cast<float>(
        (static_cast<double>(token_error[base + j]) + discrepancy_weight * static_cast<double>(token_discrepancy[base + j])) *
        (m / peak_weight)) : 0.f;
  }
  __syncthreads();
  double sum = 0.0;
  for (int64_t r = 0; r < frame_top; ++r) {
    double best = -1.0;
    int64_t at = -1;
    for (int64_t j = threadIdx.x; j < l; j += blockDim.x) {
      const double v = scratch[base + j];
      if (v > best) best = v, at = j;
    }
    top[threadIdx.x] = best;
    where[threadIdx.x] = at;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride && top[threadIdx.x + stride] > top[threadIdx.x]) {
        top[threadIdx.x] = top[threadIdx.x + stride];
        where[threadIdx.x] = where[threadIdx.x + stride];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      sum += top[0];
      scratch[base + where[0]] = -2.f;  // taken
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) frame[blockIdx.x] = static_cast<float>(sum / static_cast<double>(frame_top));
}

}  // namespace

void score(const float* target, const float* teacher, const float* student, const float* hidden,
           const float* weights, int64_t k, int64_t n, int64_t l, int64_t c, int64_t p, int64_t h, int64_t w,
           float discrepancy_weight, float map_channel_weight, float map_low, int tokens, bool uniform,
           int64_t frame_top, float map_weight, float* token_error, float* token_discrepancy, float* frame,
           float* maps, cudaStream_t s) {
  if (n == 0) return;
  float* workspace = nullptr;  // count (N*L), scratch (N*L), then peak (N)
  check(cudaMallocAsync(&workspace, sizeof(float) * (2 * n * l + n), s), "score workspace");
  float *count = workspace, *scratch = workspace + n * l, *peak = workspace + 2 * n * l;
  if (maps != nullptr) {
    peak_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(weights, l, peak);
    check(cudaGetLastError(), "score peak launch");
  }
  token_kernel<<<grid_for(n * l, kThreads / 32), kThreads, 0, s>>>(  // a warp per token
      target, teacher, student, hidden, weights, peak, k, n, l, c, p, h, w, discrepancy_weight, map_channel_weight,
      map_low, tokens, map_weight, token_error, token_discrepancy, count, maps);
  check(cudaGetLastError(), "score token launch");
  frame_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(weights, token_error, token_discrepancy, count, l,
                                                             discrepancy_weight, uniform, frame_top, scratch, frame);
  check(cudaGetLastError(), "score frame launch");
  check(cudaFreeAsync(workspace, s), "score workspace free");
}

}  // namespace cuda
}  // namespace sdmae
