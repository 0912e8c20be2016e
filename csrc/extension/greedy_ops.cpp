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

#include <optional>
#include <utility>

#include "greedy_ops.h"

namespace {

// What torch does around its own in-place ops: an inference tensor is refused
// outside inference mode before anything is written, and a write that
// happened is counted in out's version counter, so that autograd refuses a
// backward that saved out before this call. Counted after the kernel
// returns, so a call refused for its arguments counts nothing. (Inside
// inference mode this kernel still runs when either tensor is a normal one;
// an inference tensor has no counter, and bumping it there does nothing.)
void refuse_inference_output(const at::Tensor& t, const char* name) {
  TORCH_CHECK(!t.is_inference() || c10::InferenceMode::is_enabled(), "greedy_sample: ", name,
              " is an inference tensor, which torch lets in-place ops write only "
              "inside inference mode (torch.inference_mode()); write into a clone made outside it, "
              "or call inside it");
}

void greedy_sample_count_write(c10::DispatchKeySet keys, at::Tensor& out, const at::Tensor& logits) {
  refuse_inference_output(out, "out");
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("safe_greedy::greedy_sample", "")
                             .typed<void(at::Tensor&, const at::Tensor&)>();
  {
    at::AutoDispatchBelowADInplaceOrView below;
    op.redispatch(keys & c10::after_ADInplaceOrView_keyset, out, logits);
  }
  torch::autograd::impl::bump_version(out);
}

// The same for greedy_sample_outputs: every output given is written.
void greedy_sample_outputs_count_write(c10::DispatchKeySet keys, at::Tensor& out,
                                       const at::Tensor& logits,
                                       const std::optional<at::Tensor>& logprobs,
                                       const std::optional<at::Tensor>& logsumexp,
                                       const std::optional<at::Tensor>& valid,
                                       std::optional<int64_t> fallback_token) {
  refuse_inference_output(out, "out");
  const std::pair<const std::optional<at::Tensor>*, const char*> extra[] = {
      {&logprobs, "logprobs"}, {&logsumexp, "logsumexp"}, {&valid, "valid"}};
  for (const auto& [t, name] : extra) {
    if (t->has_value()) refuse_inference_output(**t, name);
  }
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("safe_greedy::greedy_sample_outputs", "")
          .typed<void(at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                      const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                      std::optional<int64_t>)>();
  {
    at::AutoDispatchBelowADInplaceOrView below;
    op.redispatch(keys & c10::after_ADInplaceOrView_keyset, out, logits, logprobs, logsumexp,
                  valid, fallback_token);
  }
  torch::autograd::impl::bump_version(out);
  for (const auto& entry : extra) {
    if (entry.first->has_value()) torch::autograd::impl::bump_version(**entry.first);
  }
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
  // The extra outputs of greedy_stats.h; a second op, so that the plain one
  // keeps its schema and its kernels.
  m.def(
      "greedy_sample_outputs(Tensor(a!) out, Tensor logits, Tensor(b!)? logprobs, "
      "Tensor(c!)? logsumexp, Tensor(d!)? valid, int? fallback_token) -> ()");
}

TORCH_LIBRARY_IMPL(safe_greedy, CPU, m) {
  m.impl("greedy_sample", &safe_greedy::greedy_sample_cpu);
  m.impl("greedy_sample_outputs", &safe_greedy::greedy_sample_outputs_cpu);
}

TORCH_LIBRARY_IMPL(safe_greedy, ADInplaceOrView, m) {
  m.impl("greedy_sample", TORCH_FN(greedy_sample_count_write));
  m.impl("greedy_sample_outputs", TORCH_FN(greedy_sample_outputs_count_write));
}
