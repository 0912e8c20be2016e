// The operator's schema, its CPU kernel, its in-place bookkeeping, and the
// Python module that loads it.
//
// The CUDA kernel registers itself in greedy_gpu_launcher.cu (CUDA and ROCm builds);
// the fake kernel for tracing lives in python/safe_greedy/ops.py.
#include <Python.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include "greedy_ops.h"

namespace {

// What torch does around its own in-place ops: an inference tensor is refused
// outside inference mode before anything is written, and a write that
// happened is counted in out's version counter, so that autograd refuses a
// backward that saved out before this call. Counted after the kernel
// returns, so a call refused for its arguments counts nothing. (Inside
// inference mode this kernel still runs when either tensor is a normal one;
// an inference tensor has no counter, and bumping it there does nothing.)
void greedy_sample_count_write(c10::DispatchKeySet keys, at::Tensor& out, const at::Tensor& logits) {
  TORCH_CHECK(!out.is_inference() || c10::InferenceMode::is_enabled(),
              "greedy_sample: out is an inference tensor, which torch lets in-place ops write only "
              "inside inference mode (torch.inference_mode()); write into a clone made outside it, "
              "or call inside it");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("safe_greedy::greedy_sample", "")
                             .typed<void(at::Tensor&, const at::Tensor&)>();
  {
    at::AutoDispatchBelowADInplaceOrView below;
    op.redispatch(keys & c10::after_ADInplaceOrView_keyset, out, logits);
  }
  torch::autograd::impl::bump_version(out);
}

}  // namespace

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

TORCH_LIBRARY_IMPL(safe_greedy, ADInplaceOrView, m) {
  m.impl("greedy_sample", TORCH_FN(greedy_sample_count_write));
}
