// Python bindings of the CUDA kernels (sdmae._C_cuda). Arguments are raw
// device pointers and the current stream, passed by sdmae/kernels.py after it
// has checked device, dtype, shape and contiguity of every tensor.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <thread>

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
  m.def("score", [](std::uintptr_t target, std::uintptr_t teacher, std::uintptr_t student, std::uintptr_t hidden,
                    std::uintptr_t weights, int64_t k, int64_t n, int64_t l, int64_t c, int64_t p, int64_t h, int64_t w,
                    float discrepancy_weight, float map_channel_weight, float map_low, int tokens, bool uniform,
                    int64_t frame_top, float map_weight, std::uintptr_t token_error, std::uintptr_t token_discrepancy,
                    std::uintptr_t frame, std::uintptr_t maps, std::uintptr_t stream) {
    require_device();
    py::gil_scoped_release release;
    sdmae::cuda::score(ptr<const float>(target), ptr<const float>(teacher), ptr<const float>(student),
                       ptr<const float>(hidden), ptr<const float>(weights), k, n, l, c, p, h, w, discrepancy_weight,
                       map_channel_weight, map_low, tokens, uniform, frame_top, map_weight, ptr<float>(token_error),
                       ptr<float>(token_discrepancy), ptr<float>(frame), ptr<float>(maps), stream_of(stream));
  });
}
