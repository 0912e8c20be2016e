// The bookkeeping torch does around its own in-place ops, for the tensors a
// kernel writes: a write is counted in the tensor's version counter (so that
// autograd refuses a backward that saved the tensor before the call), and an
// inference tensor is refused outside inference mode.
//
// The stable ABI has neither a version counter nor a dispatch key to hook, so
// each written tensor is copied onto itself through the dispatcher: torch's
// own in-place bookkeeping for copy_ runs (and refuses what it refuses),
// while copy_ itself returns at once when source and destination are the
// same tensor, launching nothing. Called after the argument checks and before
// the kernel writes, so a call refused for its arguments counts nothing and
// nothing is written. (A call refused here, for its second written tensor
// say, has counted the first: a count without a write, which only makes
// autograd refuse more.)
#pragma once

#include <torch/csrc/stable/c/shim.h>
#include <torch/csrc/stable/stableivalue_conversions.h>
#include <torch/csrc/stable/tensor.h>

#include <array>
#include <optional>

#include "errors.h"

namespace safe_greedy {

// aten::is_inference(t), asked only once a write has been refused.
inline bool is_inference_tensor(const torch::stable::Tensor& t) {
  std::array<StableIValue, 1> stack{torch::stable::detail::from(t)};
  if (torch_call_dispatcher("aten::is_inference", "", stack.data(), TORCH_ABI_VERSION) !=
      TORCH_SUCCESS) {
    return false;
  }
  return torch::stable::detail::to<bool>(stack[0]);
}

// `op` and `name` name the call and the tensor in the message of a refusal.
inline void count_write(const torch::stable::Tensor& t, const char* op, const char* name) {
  // The C shim's own copy_, not a call by name through the boxed
  // dispatcher: it costs a fraction of that on every call.
  if (aoti_torch_copy_(t.get(), t.get(), /*non_blocking=*/0) == TORCH_SUCCESS) return;
  SAFE_GREEDY_CHECK(!is_inference_tensor(t), op, ": ", name,
                    " is an inference tensor, which torch lets in-place ops write only inside "
                    "inference mode (torch.inference_mode()); write into a clone made outside it, "
                    "or call inside it");
  raise<std::runtime_error>(op, ": torch refuses an in-place write to ", name,
                            " here (is it a leaf tensor that requires grad?)");
}

inline void count_write(const std::optional<torch::stable::Tensor>& t, const char* op,
                        const char* name) {
  if (t.has_value()) count_write(*t, op, name);
}

// The tensors greedy_sample_outputs writes.
inline void count_outputs_write(const torch::stable::Tensor& out,
                                const std::optional<torch::stable::Tensor>& logprobs,
                                const std::optional<torch::stable::Tensor>& logsumexp,
                                const std::optional<torch::stable::Tensor>& valid) {
  count_write(out, "greedy_sample", "out");
  count_write(logprobs, "greedy_sample", "logprobs");
  count_write(logsumexp, "greedy_sample", "logsumexp");
  count_write(valid, "greedy_sample", "valid");
}

}  // namespace safe_greedy
