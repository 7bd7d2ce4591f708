// The fields of sdmae.score.ScoreSpec that the score kernels read, under the
// same names; one struct for the CPU and the CUDA kernels and their bindings.
#pragma once
#include <cstdint>

namespace sdmae {

struct ScoreSpec {
  int64_t patch = 1, height = 1, width = 1;  // size = (height, width), multiples of patch
  float map_normal = 0.f;                     // the map channel's target where nothing is abnormal
  float map_channel_weight = 1.f;             // the map channel's weight in the token errors
  float discrepancy_weight = 1.f;             // the discrepancy's weight in the pixel map
  float map_weight = 1.f;                     // the predicted map's weight in the pixel map
  int tokens = 0;                             // passes that judge a token: 0 all, 1 visible, 2 hidden
};

}  // namespace sdmae
