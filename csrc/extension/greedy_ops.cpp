// The operators' schemas, their CPU kernels, and the Python module that
// loads them.
//
// The CUDA kernels register themselves in greedy_gpu_launcher.cu (CUDA and
// ROCm builds); the fake kernels for tracing live in python/safe_greedy/ops.py.
// Everything here goes through PyTorch's stable ABI (torch/csrc/stable), so
// one build serves every torch from TORCH_TARGET_VERSION on; the Python
// module uses only the limited API, so it serves every CPython 3 too.
#include <Python.h>
#include <torch/csrc/stable/library.h>

#include "greedy_ops.h"

// Importing safe_greedy._C runs the static registrations below; the module
// itself has no functions.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

STABLE_TORCH_LIBRARY(safe_greedy, m) {
  m.def("greedy_sample(Tensor(a!) out, Tensor logits) -> ()");
  // The extra outputs of greedy_stats.h; a second op, so that the plain one
  // keeps its schema and its kernels.
  m.def(
      "greedy_sample_outputs(Tensor(a!) out, Tensor logits, Tensor(b!)? logprobs, "
      "Tensor(c!)? logsumexp, Tensor(d!)? valid, int? fallback_token) -> ()");
}

STABLE_TORCH_LIBRARY_IMPL(safe_greedy, CPU, m) {
  m.impl("greedy_sample", TORCH_BOX(&safe_greedy::greedy_sample_cpu));
  m.impl("greedy_sample_outputs", TORCH_BOX(&safe_greedy::greedy_sample_outputs_cpu));
}
