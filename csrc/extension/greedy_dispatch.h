// From torch dtypes to the storage types of the torch-free kernels.
#pragma once

#include <torch/headeronly/core/ScalarType.h>

#include "errors.h"
#include "kernels/greedy_key.h"

namespace safe_greedy {
using DType = torch::headeronly::ScalarType;
}  // namespace safe_greedy

// Runs the body with LogitsT bound to float, safe_greedy::bf16_t or
// safe_greedy::fp16_t. The dtype was validated before dispatch.
#define SAFE_GREEDY_DISPATCH_LOGITS(dtype, ...)                                          \
  [&] {                                                                                  \
    switch (dtype) {                                                                     \
      case ::safe_greedy::DType::Float: {                                                \
        using LogitsT = float;                                                           \
        return __VA_ARGS__();                                                            \
      }                                                                                  \
      case ::safe_greedy::DType::BFloat16: {                                             \
        using LogitsT = ::safe_greedy::bf16_t;                                           \
        return __VA_ARGS__();                                                            \
      }                                                                                  \
      case ::safe_greedy::DType::Half: {                                                 \
        using LogitsT = ::safe_greedy::fp16_t;                                           \
        return __VA_ARGS__();                                                            \
      }                                                                                  \
      default:                                                                           \
        ::safe_greedy::raise<std::runtime_error>("greedy_sample: unsupported logits dtype ", \
                                                 dtype);                                 \
    }                                                                                    \
  }()

// Runs the body with IndexT bound to int32_t or int64_t.
#define SAFE_GREEDY_DISPATCH_INDEX(dtype, ...)     \
  [&] {                                            \
    if ((dtype) == ::safe_greedy::DType::Int) {    \
      using IndexT = int32_t;                      \
      return __VA_ARGS__();                        \
    }                                              \
    using IndexT = int64_t;                        \
    return __VA_ARGS__();                          \
  }()
