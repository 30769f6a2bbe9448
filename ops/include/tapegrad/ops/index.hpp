#pragma once
// Gathers and their scatter-adds, with PyTorch's names, argument order and shape rules.
//
// Index tensors are doubles holding integers (as one_hot's labels). Each op checks every index:
// one that is not an integer, or outside [0, bound) of the axis it indexes, is a ValueError naming
// the op, the index, its position and the bound. Negative indices are rejected, as torch 1.13's
// index_select and gather do. Index tensors never receive gradients: they enter the rule as a
// constant copy (a later write to the index leaf cannot change a gradient already recorded).
//
// The gathers' rules are the scatter-adds and the scatter-adds' rules are the gathers, all four
// recorded ops, so gradients of gradients work through any of them.
#include <cstdint>
#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y = index_select(x, axis, indices): the slices of x at `indices` along `axis`, in that order
// (repeats allowed).
//   y[.., j, ..] = x[.., indices[j], ..]
//   shapes: x [.., n, ..] (axis may be negative), indices [len] or [] (one index) ->
//           y [.., len, ..]; indices of rank > 1 are a ShapeError
//   derivative: dx = index_add(zeros(x.shape), axis, indices, g)   (repeated rows add up)
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices,
                    std::source_location where = std::source_location::current());

// y = index_add(x, axis, indices, source): x with source's slices added at `indices` along
// `axis` (as torch.index_add with alpha = 1; repeated indices accumulate).
//   y = x;  y[.., indices[j], ..] += source[.., j, ..]
//   shapes: x [.., n, ..], indices [len] or [], source [.., len, ..] (x's shape with len at
//           `axis`) -> y [x.shape]
//   derivative: dx = g,  dsource = index_select(g, axis, indices)
Tensor index_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source,
                 std::source_location where = std::source_location::current());

// y = gather(x, axis, indices), as torch.gather: one element of x per element of indices.
//   y[i_0, .., i_axis, ..] = x[i_0, .., indices[i_0, .., i_axis, ..], ..]
//   shapes: x [d_0, .., d_r], indices of the same rank with indices.shape[d] <= x.shape[d] for
//           every d != axis (any size along `axis`) -> y [indices.shape]
//   derivative: dx = scatter_add(zeros(x.shape), axis, indices, g)   (repeats add up)
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& indices,
              std::source_location where = std::source_location::current());

// y = scatter_add(x, axis, indices, source), as torch.scatter_add: each source element added to
// the element of x that gather would have read for it.
//   y = x;  y[i_0, .., indices[i_0, .., i_axis, ..], ..] += source[i_0, .., i_axis, ..]
//   shapes: x [d_0, .., d_r], indices of the same rank (indices.shape[d] <= x.shape[d] for
//           d != axis), source [indices.shape] -> y [x.shape]. PyTorch also accepts a source
//           larger than indices (the excess is ignored); tapegrad asks for exactly indices' shape
//           so that dsource has source's shape (a ShapeError otherwise).
//   derivative: dx = g,  dsource = gather(g, axis, indices)
Tensor scatter_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source,
                   std::source_location where = std::source_location::current());

}  // namespace tapegrad
