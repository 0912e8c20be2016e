// How the extension refuses a call: the checks, the exception types Python
// sees, and the text of numbers, shapes, dtypes and devices in messages.
//
// The extension is built against PyTorch's stable ABI, which carries no c10
// exception types across it. torch turns a C++ standard exception thrown by a
// kernel into the Python exception of the same kind: std::out_of_range into
// IndexError (what torch.argmax raises for an empty row), std::invalid_argument
// into ValueError, std::runtime_error into RuntimeError.
#pragma once

#include <torch/csrc/stable/device.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/HeaderOnlyArrayRef.h>

#include <stdint.h>

#include <stdexcept>
#include <string>

namespace safe_greedy {

// Numbers and shapes are formatted with std::to_string, never streamed: seen
// on an H100 machine's torch build, streaming an integer into the message of
// a failing check crashed the process (a libstdc++ locale mismatch between
// the extension's compiler and the loaded runtime), while strings were fine.
inline std::string number_text(int64_t n) { return std::to_string(n); }

inline std::string shape_text(torch::headeronly::IntHeaderOnlyArrayRef sizes) {
  std::string text = "[";
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(sizes[i]);
  }
  return text + "]";
}

// As torch prints a dtype in its own messages: Float, BFloat16, Long, ...
inline std::string message_part(torch::headeronly::ScalarType dtype) {
  return torch::headeronly::toString(dtype);
}

// As torch's Device::str(): cpu, cuda:0, meta.
inline std::string message_part(const torch::stable::Device& device) {
  using torch::headeronly::DeviceType;
  std::string text;
  switch (device.type()) {
    case DeviceType::CPU: text = "cpu"; break;
    case DeviceType::CUDA: text = "cuda"; break;
    case DeviceType::HIP: text = "hip"; break;
    case DeviceType::Meta: text = "meta"; break;
    case DeviceType::XPU: text = "xpu"; break;
    case DeviceType::MPS: text = "mps"; break;
    default: text = "device type " + std::to_string(static_cast<int>(device.type())); break;
  }
  if (device.has_index()) text += ":" + std::to_string(device.index());
  return text;
}

inline std::string message_part(const char* text) { return text; }
inline std::string message_part(std::string text) { return text; }

template <class Exception, class... Parts>
[[noreturn]] void raise(const Parts&... parts) {
  std::string message;
  ((message += message_part(parts)), ...);
  throw Exception(message);
}

}  // namespace safe_greedy

// Each raises when `cond` is false, with the message parts joined; the parts
// are evaluated only then. RuntimeError, IndexError and ValueError in Python.
#define SAFE_GREEDY_CHECK(cond, ...) \
  do {                               \
    if (!(cond)) ::safe_greedy::raise<std::runtime_error>(__VA_ARGS__); \
  } while (0)
#define SAFE_GREEDY_CHECK_INDEX(cond, ...) \
  do {                                     \
    if (!(cond)) ::safe_greedy::raise<std::out_of_range>(__VA_ARGS__); \
  } while (0)
#define SAFE_GREEDY_CHECK_VALUE(cond, ...) \
  do {                                     \
    if (!(cond)) ::safe_greedy::raise<std::invalid_argument>(__VA_ARGS__); \
  } while (0)
