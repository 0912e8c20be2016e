// The kernels behind torch.ops.safe_greedy.greedy_sample, one per device.
#pragma once

#include <ATen/ATen.h>

namespace safe_greedy {

// out[r] = torch.argmax(logits[r]) for every row r; see greedy_key.h.
void greedy_sample_cpu(at::Tensor& out, const at::Tensor& logits);
void greedy_sample_cuda(at::Tensor& out, const at::Tensor& logits);

}  // namespace safe_greedy
