// The operator's schema, its CPU kernel, and the Python module that loads it.
//
// The CUDA kernel registers itself in greedy_cuda.cu (CUDA and ROCm builds);
// the fake kernel for tracing lives in python/safe_greedy/ops.py.
#include <Python.h>
#include <torch/library.h>

#include "greedy_ops.h"

extern "C" {
// Importing safe_greedy._C runs the static registrations below; the module
// itself has no functions.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
}

TORCH_LIBRARY(safe_greedy, m) {
  m.def("greedy_sample(Tensor(a!) out, Tensor logits) -> ()");
}

TORCH_LIBRARY_IMPL(safe_greedy, CPU, m) {
  m.impl("greedy_sample", &safe_greedy::greedy_sample_cpu);
}
