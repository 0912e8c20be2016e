// From torch dtypes to the storage types of the torch-free kernels.
#pragma once

#include <ATen/ATen.h>

#include "kernels/greedy_key.h"

// Runs the body with LogitsT bound to float, safe_greedy::bf16_t or
// safe_greedy::fp16_t. The dtype was validated before dispatch.
#define SAFE_GREEDY_DISPATCH_LOGITS(dtype, ...)                   \
  [&] {                                                           \
    switch (dtype) {                                              \
      case at::kFloat: {                                          \
        using LogitsT = float;                                    \
        return __VA_ARGS__();                                     \
      }                                                           \
      case at::kBFloat16: {                                       \
        using LogitsT = ::safe_greedy::bf16_t;                    \
        return __VA_ARGS__();                                     \
      }                                                           \
      case at::kHalf: {                                           \
        using LogitsT = ::safe_greedy::fp16_t;                    \
        return __VA_ARGS__();                                     \
      }                                                           \
      default:                                                    \
        TORCH_CHECK(false, "greedy_sample: unsupported logits dtype ", dtype); \
    }                                                             \
  }()

// Runs the body with IndexT bound to int32_t or int64_t.
#define SAFE_GREEDY_DISPATCH_INDEX(dtype, ...)                    \
  [&] {                                                           \
    if ((dtype) == at::kInt) {                                    \
      using IndexT = int32_t;                                     \
      return __VA_ARGS__();                                       \
    }                                                             \
    using IndexT = int64_t;                                       \
    return __VA_ARGS__();                                         \
  }()
