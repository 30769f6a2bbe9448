// Joining and splitting along an axis: each kernel, then its rule. Formulas in join.hpp.
#include "tapegrad/ops/join.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

void require_nonempty(const std::vector<Tensor>& tensors, std::string_view op) {
  if (tensors.empty()) {
    throw ValueError(fmt::format("{}: needs at least one tensor, got an empty list", op));
  }
}

// The kernel of cat and stack: every x_i seen as [outer, n_i, inner] -> y [outer, sum n_i, inner].
Values join_rows(const std::vector<Tensor>& tensors, std::size_t outer, std::size_t inner,
                 const std::vector<std::size_t>& sizes, std::size_t total) {
  Values y(outer * total * inner);
  for (std::size_t o = 0; o < outer; ++o) {
    double* out = y.data() + o * total * inner;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const std::size_t block = sizes[i] * inner;
      const double* from = tensors[i].values().data() + o * block;
      out = std::copy(from, from + block, out);
    }
  }
  return y;
}

// The pieces of x at `lengths` along axis `a`, one narrow node each.
std::vector<Tensor> pieces(const Tensor& x, std::size_t a, const std::vector<std::int64_t>& lengths,
                           std::source_location where) {
  std::vector<Tensor> out;
  out.reserve(lengths.size());
  std::int64_t offset = 0;
  for (std::int64_t length : lengths) {
    out.push_back(narrow(x, static_cast<std::int64_t>(a), offset, length, where));
    offset += length;
  }
  return out;
}
}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, std::int64_t axis, std::source_location where) {
  require_nonempty(tensors, "cat");
  const Shape& first = tensors[0].shape();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].rank() == 0) {
      throw ShapeError(fmt::format(
          "cat: tensor {} is a scalar (shape []), which has no axis to join along; use stack, "
          "or unsqueeze it first",
          i));
    }
  }
  const kernels::AxisSplit s = kernels::split_at(first, axis, "cat");
  std::vector<std::size_t> sizes(tensors.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Shape& shape = tensors[i].shape();
    if (shape.rank() != first.rank()) {
      throw ShapeError(fmt::format("cat: tensor {} has {} dimensions, tensor 0 has {} ({} vs {})",
                                   i, shape.rank(), first.rank(), shape, first));
    }
    for (std::size_t d = 0; d < first.rank(); ++d) {
      if (d != s.axis && shape[d] != first[d]) {
        throw ShapeError(fmt::format(
            "cat: tensor {} differs from tensor 0 in axis {}, not the joined axis {} ({} vs {}); "
            "every size but the joined axis's must be equal",
            i, d, s.axis, shape, first));
      }
    }
    sizes[i] = static_cast<std::size_t>(shape[s.axis]);
    total += sizes[i];
  }
  std::vector<std::int64_t> dims = first.dims();
  dims[s.axis] = static_cast<std::int64_t>(total);
  const auto a = static_cast<std::int64_t>(s.axis);
  return record(
      {"cat", "dx_i = narrow(g, axis, offset_i, n_i)"}, Shape(std::move(dims)),
      join_rows(tensors, s.outer, s.inner, sizes, total), TensorList(tensors),
      [a, sizes](const Tensor& g, const Tensor&, Inputs in) {
        std::vector<Tensor> grads(in.size());
        std::int64_t offset = 0;
        for (std::size_t i = 0; i < in.size(); ++i) {
          const auto n = static_cast<std::int64_t>(sizes[i]);
          if (kernels::needs_grad(in, i)) grads[i] = narrow(g, a, offset, n);
          offset += n;
        }
        return Grads(grads);
      },
      where);
}

Tensor stack(const std::vector<Tensor>& tensors, std::int64_t axis, std::source_location where) {
  require_nonempty(tensors, "stack");
  const Shape& first = tensors[0].shape();
  for (std::size_t i = 1; i < tensors.size(); ++i) {
    if (tensors[i].shape() != first) {
      throw ShapeError(
          fmt::format("stack: tensor {} has another shape than tensor 0; stack needs tensors of "
                      "one shape ({} vs {})",
                      i, tensors[i].shape(), first));
    }
  }
  // The new axis indexes the result, which has one axis more than each input.
  const auto rank = static_cast<std::int64_t>(first.rank());
  if (axis < -rank - 1 || axis > rank) {
    throw AxisError(
        fmt::format("stack: axis {} is out of range for stacking tensors of rank {} (shape {}); "
                    "valid axes are {}..{}",
                    axis, rank, first, -rank - 1, rank));
  }
  const auto a = static_cast<std::size_t>(axis < 0 ? axis + rank + 1 : axis);
  // Each input is [outer, 1, inner] around the new axis.
  std::size_t outer = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= static_cast<std::size_t>(first[d]);
  const std::size_t inner = first.numel() / std::max<std::size_t>(outer, 1);
  std::vector<std::int64_t> dims = first.dims();
  dims.insert(dims.begin() + static_cast<std::ptrdiff_t>(a),
              static_cast<std::int64_t>(tensors.size()));
  const std::vector<std::size_t> ones(tensors.size(), 1);
  return record(
      {"stack", "dx_i = select(g, axis, i)"}, Shape(std::move(dims)),
      join_rows(tensors, outer, inner, ones, tensors.size()), TensorList(tensors),
      [a](const Tensor& g, const Tensor&, Inputs in) {
        std::vector<Tensor> grads(in.size());
        for (std::size_t i = 0; i < in.size(); ++i) {
          if (kernels::needs_grad(in, i)) {
            grads[i] = select(g, static_cast<std::int64_t>(a), static_cast<std::int64_t>(i));
          }
        }
        return Grads(grads);
      },
      where);
}

std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t axis,
                          std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "split");
  if (split_size < 1) {
    throw ValueError(
        fmt::format("split: split_size must be at least 1, got {} (axis {} of shape {})",
                    split_size, s.axis, x.shape()));
  }
  const auto n = static_cast<std::int64_t>(s.n);
  std::vector<std::int64_t> lengths;
  for (std::int64_t offset = 0; offset < n; offset += split_size) {
    lengths.push_back(std::min(split_size, n - offset));
  }
  if (lengths.empty()) lengths.push_back(0);  // an empty axis: one empty piece, as PyTorch
  return pieces(x, s.axis, lengths, where);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& split_sizes,
                          std::int64_t axis, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "split");
  std::int64_t total = 0;
  bool negative = false;
  for (std::int64_t size : split_sizes) {
    negative = negative || size < 0;
    total += size;
  }
  if (negative || total != static_cast<std::int64_t>(s.n) || split_sizes.empty()) {
    throw ValueError(fmt::format(
        "split: the sizes [{}] must be >= 0 and sum to {}, the size of axis {} (shape {})",
        fmt::join(split_sizes, ", "), s.n, s.axis, x.shape()));
  }
  return pieces(x, s.axis, split_sizes, where);
}

std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, std::int64_t axis,
                          std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "chunk");
  if (chunks < 1) {
    throw ValueError(fmt::format("chunk: chunks must be at least 1, got {} (axis {} of shape {})",
                                 chunks, s.axis, x.shape()));
  }
  const auto n = static_cast<std::int64_t>(s.n);
  if (n == 0) {  // PyTorch: `chunks` empty pieces
    return pieces(x, s.axis, std::vector<std::int64_t>(static_cast<std::size_t>(chunks), 0), where);
  }
  return split(x, (n + chunks - 1) / chunks, axis, where);
}

}  // namespace tapegrad
