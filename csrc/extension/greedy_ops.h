// The kernels behind torch.ops.safe_greedy.greedy_sample, one per device.
#pragma once

#include <torch/csrc/stable/tensor.h>

#include <stdint.h>

#include <optional>

namespace safe_greedy {

using torch::stable::Tensor;

// out[r] = torch.argmax(logits[r]) for every row r; see greedy_key.h.
void greedy_sample_cpu(Tensor& out, const Tensor& logits);
void greedy_sample_cuda(Tensor& out, const Tensor& logits);

// The kernel alone: no argument checks and no write counted. Only for a
// caller whose own checks imply greedy_sample's and that made `out` itself,
// so that nobody else can hold it (local_keys, which writes its fresh keys).
void greedy_sample_unchecked_cpu(Tensor& out, const Tensor& logits);
void greedy_sample_unchecked_cuda(Tensor& out, const Tensor& logits);

// The same, and where given: logprobs[r] = log_softmax(logits[r].float())[out[r]],
// logsumexp[r] = logsumexp(logits[r].float()), valid[r] = no NaN and a maximum
// above -inf, and out[r] = fallback_token for rows that are not valid; see
// greedy_stats.h.
void greedy_sample_outputs_cpu(Tensor& out, const Tensor& logits,
                               const std::optional<Tensor>& logprobs,
                               const std::optional<Tensor>& logsumexp,
                               const std::optional<Tensor>& valid,
                               std::optional<int64_t> fallback_token);
void greedy_sample_outputs_cuda(Tensor& out, const Tensor& logits,
                                const std::optional<Tensor>& logprobs,
                                const std::optional<Tensor>& logsumexp,
                                const std::optional<Tensor>& valid,
                                std::optional<int64_t> fallback_token);

}  // namespace safe_greedy
