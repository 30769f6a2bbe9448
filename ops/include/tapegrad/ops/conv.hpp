#pragma once
// Convolutions (cross-correlations, as PyTorch's), NCHW and NCL, lowered to dgemm via im2col.
//
//   Tensor y = conv2d(x, w, b, {.stride = 2, .padding = {1, 2}});   // an int or {h, w}
//
// Notation: x [N, C, H, W], weight [O, C/groups, kh, kw], bias [O] (or an undefined Tensor),
// stride s, padding p, dilation d, groups G (C and O both divisible by G). Output
//   Ho = (H + 2 ph - dh (kh - 1) - 1) / sh + 1   (floor),   Wo likewise,
//   y[n, o, i, j] = b[o] + sum_{c in group(o), a, e} w[o, c, a, e] x[n, c, sh i - ph + dh a,
//                                                                   sw j - pw + dw e]
// with x read as 0 outside [0, H) x [0, W).
//
// The convolution is bilinear in (x, w), so its two gradients are again bilinear ops, and the
// three form a family closed under differentiation (each rule below is written with these ops,
// so create_graph and gradgradcheck work through any of them to any order):
//   conv2d(x, w)            dx = conv2d_input(x.shape, w, g)     dw = conv2d_weight(x, w.shape, g)
//                           db = sum of g over N, Ho, Wo
//   conv2d_input(s, w, g)   (the transposed convolution)
//                           dw = conv2d_weight(gg, w.shape, g)  dg = conv2d(gg, w)
//   conv2d_weight(x, s, g)  (the correlation of x with g)
//                           dx = conv2d_input(x.shape, gw, g)   dg = conv2d(x, gw)
// Names and argument order as torch.nn.functional.conv2d, torch.nn.grad.conv2d_input and
// torch.nn.grad.conv2d_weight.
//
// Errors (ShapeError or ValueError, naming the op and the shapes): input not 4-D (3-D unbatched
// [C, H, W] is accepted, as PyTorch), weight not 4-D, C != weight.shape[1] * groups, groups not
// dividing C or O, bias not [O], stride or dilation < 1, padding < 0, and a (dilated) kernel
// larger than the padded input.
#include <cstdint>
#include <source_location>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// One size per spatial dimension, {h, w}; a single integer means the same for both (as PyTorch's
// `int or tuple`).
struct IntPair {
  std::int64_t h = 0;
  std::int64_t w = 0;
  IntPair(std::int64_t both) : h(both), w(both) {}  // NOLINT: implicit, so .stride = 2 works
  IntPair(std::int64_t height, std::int64_t width) : h(height), w(width) {}
};

struct Conv2dOptions {
  IntPair stride = 1;
  IntPair padding = 0;
  IntPair dilation = 1;
  std::int64_t groups = 1;
};

struct Conv1dOptions {
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  std::int64_t dilation = 1;
  std::int64_t groups = 1;
};

// y = conv(x, weight) + bias, as torch.nn.functional.conv2d.
//   shapes: x [N, C, H, W] (or [C, H, W]), weight [O, C/G, kh, kw], bias [O] or undefined
//           -> y [N, O, Ho, Wo] (or [O, Ho, Wo])
//   derivative: dx = conv2d_input(x.shape, weight, g), dweight = conv2d_weight(x, weight.shape, g),
//               dbias = sum over n, i, j of g[n, o, i, j]
//   cost: per sample and group one im2col and one dgemm [O/G, C/G kh kw] x [C/G kh kw, Ho Wo].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Conv2dOptions options = {},
              std::source_location where = std::source_location::current());

// The gradient of conv2d with respect to its input: the transposed convolution of grad_output
// with weight, back onto an input of shape `input_shape` (which fixes the rows/columns a strided
// convolution dropped), as torch.nn.grad.conv2d_input.
//   shapes: input_shape [N, C, H, W], weight [O, C/G, kh, kw], grad_output [N, O, Ho, Wo]
//           -> [N, C, H, W]
//   dx[n, c, h, w] = sum over (o, i, j, a, e) with h = sh i - ph + dh a, w = sw j - pw + dw e of
//                    w[o, c, a, e] g[n, o, i, j]
//   derivative (gg of the input's shape): dweight = conv2d_weight(gg, weight.shape, grad_output),
//               dgrad_output = conv2d(gg, weight)
//   cost: per sample and group one dgemm [C/G kh kw, O/G] x [O/G, Ho Wo] and one col2im.
Tensor conv2d_input(const Shape& input_shape, const Tensor& weight, const Tensor& grad_output,
                    Conv2dOptions options = {},
                    std::source_location where = std::source_location::current());

// The gradient of conv2d with respect to its weight: the correlation of the input with
// grad_output, as torch.nn.grad.conv2d_weight.
//   shapes: x [N, C, H, W], weight_shape [O, C/G, kh, kw], grad_output [N, O, Ho, Wo]
//           -> [O, C/G, kh, kw]
//   dw[o, c, a, e] = sum_{n, i, j} g[n, o, i, j] x[n, c, sh i - ph + dh a, sw j - pw + dw e]
//   derivative (gw of the weight's shape): dx = conv2d_input(x.shape, gw, grad_output),
//               dgrad_output = conv2d(x, gw)
//   cost: per sample and group one im2col and one dgemm [O/G, Ho Wo] x [Ho Wo, C/G kh kw].
Tensor conv2d_weight(const Tensor& x, const Shape& weight_shape, const Tensor& grad_output,
                     Conv2dOptions options = {},
                     std::source_location where = std::source_location::current());

// y = conv(x, weight) + bias along one dimension, as torch.nn.functional.conv1d: conv2d on
// [N, C, 1, L] with a [O, C/G, 1, k] kernel (a composition of reshape and conv2d, so its
// derivatives are theirs).
//   shapes: x [N, C, L] (or [C, L]), weight [O, C/G, k], bias [O] or undefined
//           -> y [N, O, Lo], Lo = (L + 2 p - d (k - 1) - 1) / s + 1
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Conv1dOptions options = {},
              std::source_location where = std::source_location::current());

}  // namespace tapegrad
