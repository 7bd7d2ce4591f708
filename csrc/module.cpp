// Python bindings of the CPU kernels (sdmae._C).
// sdmae/kernels.py validates and allocates; these wrappers re-check the sizes
// they rely on, so that a direct call can raise but never read out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "ops.h"
#include "score_spec_binding.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using F32 = py::array_t<float, py::array::c_style>;
using U8 = py::array_t<uint8_t, py::array::c_style>;
using I64 = py::array_t<int64_t, py::array::c_style>;

namespace {

void expect(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("sdmae._C: " + what);
}

void expect_shape(const py::array& a, std::initializer_list<int64_t> shape, const char* name) {
  std::string want = "(";
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  int k = 0;
  for (int64_t s : shape) {
    want += std::to_string(s) + (k + 1 < static_cast<int>(shape.size()) ? ", " : ")");
    if (ok && a.shape(k) != s) ok = false;
    ++k;
  }
  expect(ok, std::string(name) + " must have shape " + want);
}

void expect_patch(int64_t h, int64_t w, int64_t p) {
  expect(p > 0 && h > 0 && w > 0 && h % p == 0 && w % p == 0, "height and width must be positive multiples of the patch size");
}

void patchify(F32 x, int64_t p, F32 out) {
  expect(x.ndim() == 4, "x must be (N, C, H, W)");
  const int64_t n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
  expect_patch(h, w, p);
  expect_shape(out, {n, (h / p) * (w / p), p * p * c}, "out");
  const float* src = x.data();
  float* dst = out.mutable_data();
  py::gil_scoped_release release;
  sdmae::patchify(src, dst, n, c, h, w, p);
}

void gather_patches(F32 x, I64 ids, int64_t p, F32 out) {
  expect(x.ndim() == 4, "x must be (N, C, H, W)");
  const int64_t n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
  expect_patch(h, w, p);
  expect(ids.ndim() == 2 && ids.shape(0) == n, "ids must be (N, K) with the N of x");
  const int64_t k = ids.shape(1), l = (h / p) * (w / p);
  expect_shape(out, {n, k, c * p * p}, "out");
  // The ids are addresses into x: one bad id would read out of bounds.
  const int64_t* id = ids.data();
  for (int64_t i = 0; i < n * k; ++i) expect(id[i] >= 0 && id[i] < l, "ids must lie in [0, L), L = (H/p)*(W/p)");
  const float* src = x.data();
  float* dst = out.mutable_data();
  py::gil_scoped_release release;
  sdmae::gather_patches(src, id, dst, n, c, h, w, p, k);
}

void token_weights(F32 g, int64_t p, F32 out) {
  expect(g.ndim() == 4, "g must be (N, C, H, W)");
  const int64_t n = g.shape(0), c = g.shape(1), h = g.shape(2), w = g.shape(3);
  expect_patch(h, w, p);
  expect(c > 0, "g needs at least one channel");
  expect_shape(out, {n, (h / p) * (w / p)}, "out");
  const float* src = g.data();
  float* dst = out.mutable_data();
  py::gil_scoped_release release;
  sdmae::token_weights(src, dst, n, c, h, w, p);
}

void prepare(U8 frames, I64 centres, int64_t h, int64_t w, int64_t p, int64_t offset, int64_t step,
             F32 inputs, F32 gradients, F32 weights) {
  expect(frames.ndim() == 4 && frames.shape(3) == 3, "frames must be (T, H0, W0, 3)");
  const int64_t t = frames.shape(0), h0 = frames.shape(1), w0 = frames.shape(2);
  expect(t > 0 && h0 > 0 && w0 > 0, "frames must not be empty");
  expect(centres.ndim() == 1, "centres must be (N,)");
  const int64_t n = centres.shape(0);
  expect_patch(h, w, p);
  expect(offset >= 0 && step >= 0, "offset and step must be >= 0");
  const int64_t* cs = centres.data();
  for (int64_t i = 0; i < n; ++i) expect(cs[i] >= 0 && cs[i] < t, "centres must lie in [0, T)");
  expect_shape(inputs, {n, 9, h, w}, "inputs");
  expect_shape(gradients, {n, 3, h, w}, "gradients");
  expect_shape(weights, {n, (h / p) * (w / p)}, "weights");
  const uint8_t* src = frames.data();
  float *in = inputs.mutable_data(), *gr = gradients.mutable_data(), *wt = weights.mutable_data();
  py::gil_scoped_release release;
  sdmae::prepare(src, t, h0, w0, cs, n, h, w, p, offset, step, in, gr, wt);
}

void score_passes(F32 target, F32 teacher, F32 student, F32 hidden, F32 weights, const sdmae::ScoreSpec& spec,
                  F32 error, F32 discrepancy, py::object maps) {
  expect(target.ndim() == 3, "target must be (N, L, p*p*C)");
  expect(teacher.ndim() == 4, "teacher must be (K, N, L, p*p*C)");
  const int64_t n = target.shape(0), l = target.shape(1), d = target.shape(2), k = teacher.shape(0);
  const int64_t p = spec.patch, h = spec.height, w = spec.width;
  expect(d > 0 && d % (p * p) == 0, "the token length must be p*p*C");
  expect(l == (h / p) * (w / p), "L must equal (h/p)*(w/p) of spec.size");
  expect(k >= 1, "at least one pass");
  expect_shape(teacher, {k, n, l, d}, "teacher");
  expect_shape(student, {k, n, l, d}, "student");
  expect_shape(hidden, {k, n, l}, "hidden");
  expect_shape(weights, {n, l}, "weights");
  expect_shape(error, {k, n, l}, "error");
  expect_shape(discrepancy, {k, n, l}, "discrepancy");
  float* map_ptr = nullptr;
  if (!maps.is_none()) {
    expect(py::isinstance<py::array>(maps), "maps must be a NumPy array or None");
    py::array m = py::reinterpret_borrow<py::array>(maps);
    expect(m.dtype().is(py::dtype::of<float>()) && (m.flags() & py::array::c_style) && m.writeable(),
           "maps must be a writeable C-contiguous float32 array");
    expect_shape(m, {n, h, w}, "maps");
    map_ptr = static_cast<float*>(m.mutable_data());
  }
  const float *tg = target.data(), *te = teacher.data(), *st = student.data(), *hd = hidden.data(),
              *wt = weights.data();
  float *e = error.mutable_data(), *q = discrepancy.mutable_data();
  py::gil_scoped_release release;
  sdmae::score_passes(tg, te, st, hd, wt, k, n, d / (p * p), spec, e, q, map_ptr);
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "sdmae CPU kernels (C++17, OpenMP). Use sdmae.kernels, which validates and dispatches.";
  m.attr("__version__") = SDMAE_VERSION;
#ifdef _OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
  m.def("max_threads", &max_threads, "Threads the kernels use (OpenMP's maximum).");
  m.def("patchify", &patchify, py::arg("x").noconvert(), py::arg("p"), py::arg("out").noconvert(),
        R"(x (N, C, H, W) float32 -> out (N, L, p*p*C) float32, written in place.)");
  m.def("gather_patches", &gather_patches, py::arg("x").noconvert(), py::arg("ids").noconvert(), py::arg("p"),
        py::arg("out").noconvert(),
        R"(x (N, C, H, W) float32, ids (N, K) int64 in [0, L) -> out (N, K, C*p*p) float32, each patch ordered
(channel, row, column) like a stride-p Conv2d weight, written in place.)");
  m.def("token_weights", &token_weights, py::arg("g").noconvert(), py::arg("p"), py::arg("out").noconvert(),
        R"(g (N, C, H, W) float32 -> out (N, L) float32 motion weights, written in place.)");
  m.def("prepare", &prepare, py::arg("frames").noconvert(), py::arg("centres").noconvert(), py::arg("h"),
        py::arg("w"), py::arg("p"), py::arg("offset"), py::arg("step"), py::arg("inputs").noconvert(),
        py::arg("gradients").noconvert(), py::arg("weights").noconvert(),
        R"(frames (T, H0, W0, 3) uint8, centres (N,) int64 -> inputs (N, 9, h, w), gradients (N, 3, h, w),
weights (N, L), all float32 and written in place.)");
  sdmae::bind_score_spec(m);
  m.def("score_passes", &score_passes, py::arg("target").noconvert(), py::arg("teacher").noconvert(),
        py::arg("student").noconvert(), py::arg("hidden").noconvert(), py::arg("weights").noconvert(),
        py::arg("spec"), py::arg("error").noconvert(), py::arg("discrepancy").noconvert(), py::arg("maps"),
        R"(target (N, L, p*p*C), teacher/student (K, N, L, p*p*C), hidden (K, N, L), weights (N, L) float32,
spec a ScoreSpec -> error, discrepancy (K, N, L), maps (N, h, w) or None, all written in place
(sdmae.reference.score_passes).)");
}
