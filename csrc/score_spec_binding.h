// sdmae._C.ScoreSpec and sdmae._C_cuda.ScoreSpec: the kernels' part of
// sdmae.score.ScoreSpec, built by keyword under the Python names and checked
// once here, so a kernel never sees a swapped or out-of-range setting.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "score_spec.h"

namespace sdmae {

inline ScoreSpec make_score_spec(int64_t patch, std::pair<int64_t, int64_t> size, float map_normal,
                                 const std::string& tokens, float map_channel_weight, float discrepancy_weight,
                                 float map_weight) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("ScoreSpec: " + what); };
  if (patch < 1 || size.first < 1 || size.second < 1 || size.first % patch || size.second % patch)
    fail("size must be two positive multiples of patch");
  if (!(map_normal < 1.f)) fail("map_normal must be < 1");
  for (float v : {map_channel_weight, discrepancy_weight, map_weight})
    if (!(std::isfinite(v) && v >= 0.f)) fail("weights must be finite and >= 0");
  ScoreSpec s;
  s.patch = patch;
  s.height = size.first;
  s.width = size.second;
  s.map_normal = map_normal;
  s.map_channel_weight = map_channel_weight;
  s.discrepancy_weight = discrepancy_weight;
  s.map_weight = map_weight;
  if (tokens == "all") s.tokens = 0;
  else if (tokens == "visible") s.tokens = 1;
  else if (tokens == "hidden") s.tokens = 2;
  else fail("tokens must be 'all', 'visible' or 'hidden', got '" + tokens + "'");
  return s;
}

inline void bind_score_spec(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<ScoreSpec>(m, "ScoreSpec", py::module_local(),
                        R"(The score kernels' settings, made by sdmae.kernels from a sdmae.score.ScoreSpec.)")
      .def(py::init(&make_score_spec), py::kw_only(), py::arg("patch"), py::arg("size"), py::arg("map_normal"),
           py::arg("tokens"), py::arg("map_channel_weight"), py::arg("discrepancy_weight"), py::arg("map_weight"))
      .def_readonly("patch", &ScoreSpec::patch)
      .def_property_readonly("size", [](const ScoreSpec& s) { return std::make_pair(s.height, s.width); })
      .def_readonly("map_normal", &ScoreSpec::map_normal)
      .def_property_readonly("tokens", [](const ScoreSpec& s) {
        return std::string(s.tokens == 0 ? "all" : s.tokens == 1 ? "visible" : "hidden");
      })
      .def_readonly("map_channel_weight", &ScoreSpec::map_channel_weight)
      .def_readonly("discrepancy_weight", &ScoreSpec::discrepancy_weight)
      .def_readonly("map_weight", &ScoreSpec::map_weight);
}

}  // namespace sdmae
