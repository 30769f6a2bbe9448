#pragma once
// Reductions. `axis` may be negative (-1 is the last axis); keepdim keeps the reduced axis with
// size 1 (so the result broadcasts against x). Shapes: x [d0, .., dk, ..] -> [d0, .., 1 or -, ..];
// without an axis, over all elements -> [] (a scalar). An axis outside [-rank, rank) is an
// AxisError; reducing an empty axis (or an empty tensor) is a ShapeError, where PyTorch gives NaN
// or errors depending on the op.
//
// NaN and infinities follow PyTorch: a NaN anywhere in a line makes max, min, var and std_dev of
// that line NaN; argmax and argmin treat NaN as the extreme (the index of the first NaN).
#include <cstdint>

#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y = sum_i x_i                            dx = broadcast(g)
Tensor sum(const Tensor& x, std::source_location where = std::source_location::current());
Tensor sum(const Tensor& x, std::int64_t axis, bool keepdim = false,
           std::source_location where = std::source_location::current());
// y = (1/n) sum_i x_i                      dx = broadcast(g) / n
// Mean over an empty axis (n = 0) is a ShapeError rather than a silent NaN.
Tensor mean(const Tensor& x, std::source_location where = std::source_location::current());
Tensor mean(const Tensor& x, std::int64_t axis, bool keepdim = false,
            std::source_location where = std::source_location::current());

// y = max_i x_i                            dx = broadcast(g) * [x == y] / (number of maxima)
// PyTorch's torch.amax, in both forms: ties share the gradient equally, and a line holding a NaN
// has the value NaN and the gradient NaN along the whole line (no element equals NaN, so the
// count is 0 and PyTorch's (g / count) * mask is 0/0 there). torch.max(x) (no dim) and
// torch.max(x, dim) differ only in their gradients at ties and NaNs (to one element, or evenly to
// the NaNs); use argmax for the index. Empty input is a ShapeError.
Tensor max(const Tensor& x, std::source_location where = std::source_location::current());
Tensor max(const Tensor& x, std::int64_t axis, bool keepdim = false,
           std::source_location where = std::source_location::current());
// PyTorch's name for the same op (a single axis here): amax(x, axis) == max(x, axis).
Tensor amax(const Tensor& x, std::source_location where = std::source_location::current());
Tensor amax(const Tensor& x, std::int64_t axis, bool keepdim = false,
            std::source_location where = std::source_location::current());

// y = min_i x_i                            dx = broadcast(g) * [x == y] / (number of minima)
// torch.amin, exactly as max above (ties share, NaN lines are NaN in value and gradient).
// With an axis it returns the values only, where PyTorch's torch.min(x, dim) returns (values,
// indices): the indices are argmin(x, axis, keepdim), a separate constant.
Tensor min(const Tensor& x, std::source_location where = std::source_location::current());
Tensor min(const Tensor& x, std::int64_t axis, bool keepdim = false,
           std::source_location where = std::source_location::current());
Tensor amin(const Tensor& x, std::source_location where = std::source_location::current());
Tensor amin(const Tensor& x, std::int64_t axis, bool keepdim = false,
            std::source_location where = std::source_location::current());

// argmax / argmin: the index of the largest / smallest element along `axis` (of the flattened
// tensor without an axis: shape []), as doubles holding integers (tapegrad's index type, what
// one_hot and the gathers take). The FIRST index on ties and, as PyTorch, NaN counts as the
// extreme: a line holding a NaN answers the index of its first NaN. The result is a constant: it
// has no derivative, never enters the tape and never requires grad (PyTorch's integer result).
//   shapes: x [.., n, ..] -> [.., 1 or -, ..]; an empty axis is a ShapeError
Tensor argmax(const Tensor& x, std::source_location where = std::source_location::current());
Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim = false,
              std::source_location where = std::source_location::current());
Tensor argmin(const Tensor& x, std::source_location where = std::source_location::current());
Tensor argmin(const Tensor& x, std::int64_t axis, bool keepdim = false,
              std::source_location where = std::source_location::current());

// Variance with Bessel's correction c (PyTorch's torch.var; c = 1 unbiased, c = 0 population):
//   y = sum_i (x_i - mean(x))^2 / (n - c)     dx = broadcast(g) * 2 (x - mean(x)) / (n - c)
// n - c <= 0 is a ValueError (PyTorch returns inf or NaN with a warning, and for c > n a finite
// gradient of the wrong sign); so is a non-finite c. A NaN or an infinity in a line makes its
// variance NaN (inf - inf), and its gradient follows the formula, as PyTorch.
// A bool third argument reads as PyTorch's `unbiased` (true -> c = 1, false -> c = 0).
//   shapes: x [.., n, ..] -> [.., 1 or -, ..]
Tensor var(const Tensor& x, std::int64_t axis, double correction = 1.0, bool keepdim = false,
           std::source_location where = std::source_location::current());
// Over all elements -> []: var(x), or var(x, {.correction = 0}).
struct VarOptions {
  double correction = 1.0;
};
Tensor var(const Tensor& x, VarOptions options = {},
           std::source_location where = std::source_location::current());

// Standard deviation, PyTorch's torch.std (named std_dev: `std` would read as the namespace std
// next to std::sqrt, and hide nothing a user could search for).
//   y = sqrt(var(x, axis, correction))        dx = var's rule applied to g / (2 y), and 0 where
//                                              y == 0 (a constant line), as PyTorch
// The same shapes and errors as var.
Tensor std_dev(const Tensor& x, std::int64_t axis, double correction = 1.0, bool keepdim = false,
               std::source_location where = std::source_location::current());
Tensor std_dev(const Tensor& x, VarOptions options = {},
               std::source_location where = std::source_location::current());

}  // namespace tapegrad
