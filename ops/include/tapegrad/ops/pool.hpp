#pragma once
// Pooling over the two spatial dimensions of NCHW tensors (or unbatched CHW), as
// torch.nn.functional's max_pool2d, avg_pool2d and adaptive_avg_pool2d.
//
// Notation: x [N, C, H, W], kernel k, stride s (defaults to k), padding p, dilation d (max only).
// Output Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1 (ceil instead of floor with
// ceil_mode, dropping a last window that would start in the right padding), Wo likewise.
// Window (i, j) covers rows sh i - ph + dh a, a in [0, kh), and columns likewise.
//
// Every backward is itself an op with a rule, so create_graph and gradgradcheck work:
//   max_pool2d       dx = scatter-add of g to each window's argmax        (max_pool2d_backward)
//   max_pool2d_backward   dg = gather of gg at the same argmaxes, whose rule scatters again
//   avg_pool2d       dx = g / divisor spread over each window           (avg_pool2d_backward)
//   avg_pool2d_backward   dg = avg_pool2d(gg): the two are each other's adjoint
//   (adaptive_avg_pool2d likewise)
//
// Errors (ShapeError or ValueError, naming the op and the shapes): input not 3-D or 4-D, kernel,
// stride or dilation < 1, padding < 0 or more than half the kernel (as PyTorch), a kernel larger
// than the padded input, an output size < 1.
#include <cstdint>
#include <optional>
#include <source_location>

#include "tapegrad/core/tensor.hpp"
#include "tapegrad/ops/conv.hpp"

namespace tapegrad {

// y[n, c, i, j] = max over window (i, j) of x, the padding counting as -inf.
//   shapes: x [N, C, H, W] (or [C, H, W]) -> y [N, C, Ho, Wo] (or [C, Ho, Wo])
//   derivative: dx[argmax of window (i, j)] += g[i, j]. The argmax is the FIRST maximum in the
//   window's row-major order (a NaN wins and propagates), exactly PyTorch's index-based
//   backward; overlapping windows that share an argmax add their gradients there.
Tensor max_pool2d(const Tensor& x, IntPair kernel_size, std::optional<IntPair> stride = {},
                  IntPair padding = 0, IntPair dilation = 1, bool ceil_mode = false,
                  std::source_location where = std::source_location::current());

// y[n, c, i, j] = (sum over window (i, j) of x, padding as 0) / divisor, where the divisor is
// kh kw (count_include_pad, PyTorch's default; a ceil_mode window hanging past the right padding
// counts only up to it) or the number of input elements in the window (count_include_pad false).
//   shapes: x [N, C, H, W] (or [C, H, W]) -> y [N, C, Ho, Wo]
//   derivative: dx = g / divisor added to each element of its window (avg_pool2d_backward)
Tensor avg_pool2d(const Tensor& x, IntPair kernel_size, std::optional<IntPair> stride = {},
                  IntPair padding = 0, bool ceil_mode = false, bool count_include_pad = true,
                  std::source_location where = std::source_location::current());

// y[n, c, i, j] = mean of x over rows [floor(i H / Ho), ceil((i + 1) H / Ho)) and columns
// [floor(j W / Wo), ceil((j + 1) W / Wo)), as PyTorch; {1, 1} is global average pooling.
//   shapes: x [N, C, H, W] (or [C, H, W]) -> y [N, C, Ho, Wo]; output_size >= 1
//   derivative: dx = g / window size added over each window (adaptive_avg_pool2d_backward)
Tensor adaptive_avg_pool2d(const Tensor& x, IntPair output_size,
                           std::source_location where = std::source_location::current());

}  // namespace tapegrad
