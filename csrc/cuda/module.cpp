// Python bindings of the CUDA kernels (sdmae._C_cuda). Arguments are raw
// device pointers and the current stream, passed by sdmae/kernels.py after it
// has checked device, dtype, shape and contiguity of every tensor; score_passes
// takes the tensors and a ScoreSpec and checks them here as well.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../score_spec_binding.h"
#include "ops_cuda.h"

namespace py = pybind11;

namespace {

template <typename T>
T* ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

cudaStream_t stream_of(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

void require_device() {
  if (device_count() == 0)
    throw std::runtime_error("sdmae._C_cuda: no CUDA device is available on this machine; use backend='cpp' or 'numpy'");
}

// Launch token_weights on a 1x1x4x4 zero image on the current device; "" when it ran
// and wrote the uniform weight 1, else why not.
std::string probe_current(int device) {
  std::string problem;
  float* buf = nullptr;
  float weight = 0.f;
  cudaError_t status = cudaMalloc(&buf, 17 * sizeof(float));
  if (status == cudaSuccess) status = cudaMemset(buf, 0, 17 * sizeof(float));
  if (status == cudaSuccess) {
    try {
      sdmae::cuda::token_weights(buf, buf + 16, 1, 1, 4, 4, 4, nullptr);
      status = cudaMemcpy(&weight, buf + 16, sizeof(float), cudaMemcpyDeviceToHost);
    } catch (const std::exception& e) {
      problem = e.what();
    }
  }
  if (problem.empty() && status != cudaSuccess)
    problem = "sdmae._C_cuda: device " + std::to_string(device) + ": " + cudaGetErrorString(status);
  if (problem.empty() && weight != 1.f)
    problem = "sdmae._C_cuda: the probe kernel ran on device " + std::to_string(device) + " but wrote " +
              std::to_string(weight) + " instead of 1";
  cudaGetLastError();  // a failed launch is not sticky: leave no error behind
  if (buf != nullptr) cudaFree(buf);
  return problem;
}

// Why the kernels cannot run on `device` ("" when they can). A build without the GPU's
// architecture imports and counts devices fine and fails only at its first launch (no
// kernel image), so sdmae.kernels asks this once before it reports or picks CUDA. It
// runs in a thread of its own: cudaSetDevice there leaves the caller's current device
// (torch's) alone, and restoring it would create a context on GPU 0 (CUDA 12+).
std::string probe(int device) {
  if (device_count() == 0) return "no CUDA device is available";
  std::string problem;
  std::thread([&] {
    try {  // an exception escaping a thread would terminate the interpreter
      const cudaError_t status = cudaSetDevice(device);
      problem = status == cudaSuccess ? probe_current(device)
                                      : "sdmae._C_cuda: device " + std::to_string(device) + ": " +
                                            cudaGetErrorString(status);
    } catch (const std::exception& e) {
      problem = e.what();
    }
  }).join();
  return problem;
}

// The device address of a torch tensor, once it is what the kernel assumes:
// float32, C-contiguous, on CUDA device `device`, of shape `shape`.
std::uintptr_t device_address(py::handle t, const std::string& name, const std::vector<int64_t>& shape,
                              int64_t device) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("sdmae._C_cuda: " + name + " " + what); };
  if (!py::hasattr(t, "data_ptr") || !py::hasattr(t, "is_cuda")) fail("must be a torch tensor");
  if (!t.attr("is_cuda").cast<bool>()) fail("must be on a CUDA device");
  if (t.attr("device").attr("index").cast<int64_t>() != device) fail("must be on the device of target");
  if (py::str(t.attr("dtype")).cast<std::string>() != "torch.float32") fail("must have dtype float32");
  if (!t.attr("is_contiguous")().cast<bool>()) fail("must be contiguous");
  py::tuple got = t.attr("shape");
  bool ok = got.size() == shape.size();
  std::string want = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    want += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : ")");
    if (ok && got[i].cast<int64_t>() != shape[i]) ok = false;
  }
  if (!ok) fail("must have shape " + want);
  return t.attr("data_ptr")().cast<std::uintptr_t>();
}

void score_passes(py::object target, py::object teacher, py::object student, py::object hidden, py::object weights,
                  const sdmae::ScoreSpec& spec, py::object error, py::object discrepancy, py::object maps,
                  std::uintptr_t stream) {
  py::tuple tshape = target.attr("shape"), pshape = teacher.attr("shape");
  if (tshape.size() != 3 || pshape.size() != 4)
    throw std::invalid_argument("sdmae._C_cuda: target must be (N, L, p*p*C) and teacher (K, N, L, p*p*C)");
  const int64_t n = tshape[0].cast<int64_t>(), l = tshape[1].cast<int64_t>(), d = tshape[2].cast<int64_t>();
  const int64_t k = pshape[0].cast<int64_t>(), p = spec.patch;
  if (l != (spec.height / p) * (spec.width / p) || d <= 0 || d % (p * p) || k < 1)
    throw std::invalid_argument("sdmae._C_cuda: target must be (N, (h/p)*(w/p), p*p*C) for spec.size and "
                                "spec.patch, with at least one pass");
  const int64_t device = py::hasattr(target, "device") && !target.attr("device").attr("index").is_none()
                             ? target.attr("device").attr("index").cast<int64_t>() : -1;
  const auto tg = device_address(target, "target", {n, l, d}, device);
  const auto te = device_address(teacher, "teacher", {k, n, l, d}, device);
  const auto st = device_address(student, "student", {k, n, l, d}, device);
  const auto hd = device_address(hidden, "hidden", {k, n, l}, device);
  const auto wt = device_address(weights, "weights", {n, l}, device);
  const auto er = device_address(error, "error", {k, n, l}, device);
  const auto dc = device_address(discrepancy, "discrepancy", {k, n, l}, device);
  const auto mp = maps.is_none() ? 0 : device_address(maps, "maps", {n, spec.height, spec.width}, device);
  require_device();
  py::gil_scoped_release release;
  sdmae::cuda::score_passes(ptr<const float>(tg), ptr<const float>(te), ptr<const float>(st), ptr<const float>(hd),
                            ptr<const float>(wt), k, n, d / (p * p), spec, ptr<float>(er), ptr<float>(dc),
                            ptr<float>(mp), stream_of(stream));
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "sdmae CUDA kernels. Use sdmae.kernels, which validates tensors and passes pointers and the stream.";
  m.attr("__version__") = SDMAE_VERSION;
  m.def("device_count", &device_count, "Number of CUDA devices the runtime sees (0 without a GPU).");
  m.def("probe", [](int device) {
    py::gil_scoped_release release;
    return probe(device);
  }, py::arg("device") = 0, "Run one tiny kernel on the device: '' when it works, else the reason.");
  m.def("patchify", [](std::uintptr_t x, std::uintptr_t out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p,
                       std::uintptr_t stream) {
    require_device();
    py::gil_scoped_release release;
    sdmae::cuda::patchify(ptr<const float>(x), ptr<float>(out), n, c, h, w, p, stream_of(stream));
  });
  m.def("token_weights", [](std::uintptr_t g, std::uintptr_t out, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t p, std::uintptr_t stream) {
    require_device();
    py::gil_scoped_release release;
    sdmae::cuda::token_weights(ptr<const float>(g), ptr<float>(out), n, c, h, w, p, stream_of(stream));
  });
  m.def("prepare", [](std::uintptr_t frames, int64_t h0, int64_t w0, std::uintptr_t slot_frames, int64_t num_slots,
                      std::uintptr_t sample_slots, int64_t n, int64_t h, int64_t w, int64_t p, std::uintptr_t cache,
                      std::uintptr_t inputs, std::uintptr_t gradients, std::uintptr_t weights, std::uintptr_t stream) {
    require_device();
    py::gil_scoped_release release;
    sdmae::cuda::prepare(ptr<const uint8_t>(frames), h0, w0, ptr<const int64_t>(slot_frames), num_slots,
                         ptr<const int64_t>(sample_slots), n, h, w, p, ptr<float>(cache), ptr<float>(inputs),
                         ptr<float>(gradients), ptr<float>(weights), stream_of(stream));
  });
  sdmae::bind_score_spec(m);
  m.def("score_passes", &score_passes, py::arg("target"), py::arg("teacher"), py::arg("student"), py::arg("hidden"),
        py::arg("weights"), py::arg("spec"), py::arg("error"), py::arg("discrepancy"), py::arg("maps"),
        py::arg("stream"),
        R"(CUDA float32 tensors target (N, L, p*p*C), teacher/student (K, N, L, p*p*C), hidden (K, N, L),
weights (N, L), spec a ScoreSpec -> error, discrepancy (K, N, L), maps (N, h, w) or None, written in
place on `stream` (sdmae.reference.score_passes). Every tensor's device, dtype, shape and contiguity
is checked first.)");
}
