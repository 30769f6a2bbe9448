#pragma once
// Joining tensors along an axis, and splitting one into pieces. PyTorch's names, argument order
// and edge cases; every axis may be negative.
//
// How these enter the tape (it keeps one result per node):
//   - cat and stack are ONE node with many inputs; the rule returns one gradient per input (a
//     narrow, or a select, of g), so a tensor joined twice gets both gradients summed.
//   - split and chunk have many results, so they record one `narrow` node per piece: each piece
//     is an ordinary tensor, differentiable on its own, and pieces a loss never uses cost nothing
//     in backward. A piece's gradient is slice_backward (zeros of x's shape around g), and the
//     engine sums the pieces' gradients into x.
#include <cstdint>
#include <vector>

#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// Concatenates along `axis`: every tensor has the same rank and the same sizes on every other
// axis (a ShapeError naming the op, the index of the first tensor that differs and both shapes);
// an empty list is a ValueError, a scalar (no axis to join along) a ShapeError.
//   shapes: [.., n_0, ..], [.., n_1, ..], .. -> [.., n_0 + n_1 + .., ..]
//   y[.., o_i + k, ..] = x_i[.., k, ..] with o_i = n_0 + .. + n_{i-1}
//   derivative (the gradient splits): dx_i = narrow(g, axis, o_i, n_i)
Tensor cat(const std::vector<Tensor>& tensors, std::int64_t axis = 0,
           std::source_location where = std::source_location::current());
// Joins tensors of ONE shape along a new axis, which indexes the result (-(rank+1)..rank):
//   shapes: k tensors [d...] -> [d_0, .., k, .., d_{r-1}] (k at position `axis`)
//   y[.., i, ..] = x_i;   derivative: dx_i = select(g, axis, i)
// Shapes that differ are a ShapeError naming the index and both shapes; an empty list a
// ValueError.
Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis = 0,
             std::source_location where = std::source_location::current());

// Pieces of `split_size` along `axis` (the last one smaller if the size does not divide):
//   [.., n, ..] -> ceil(n / split_size) pieces [.., split_size, ..] (at least one piece, so an
//   empty axis gives one empty piece, as PyTorch). split_size >= 1, else a ValueError.
// Each piece is narrow(x, axis, offset, length): differentiable, one node each (see above).
// Note: split(x, {3}) picks this overload (split_size 3), as it would in Python's split(x, 3).
std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t axis = 0,
                          std::source_location where = std::source_location::current());
// Pieces of the given sizes along `axis`: sizes >= 0 summing to n, else a ValueError.
//   [.., n, ..] -> [.., sizes[0], ..], [.., sizes[1], ..], ..
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& split_sizes,
                          std::int64_t axis = 0,
                          std::source_location where = std::source_location::current());
// `chunks` pieces of ceil(n / chunks) along `axis` (PyTorch's chunk): fewer pieces when they
// run out (chunk of 6 into 4 gives sizes 2, 2, 2); an empty axis gives `chunks` empty pieces.
// chunks >= 1, else a ValueError.
std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t axis = 0,
                          std::source_location where = std::source_location::current());

}  // namespace tapegrad
