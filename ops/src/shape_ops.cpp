// Ops that move values: each kernel, then its rule. Formulas in shape_ops.hpp.
#include "tapegrad/ops/shape_ops.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

Shape infer_shape(const Shape& from, std::vector<std::int64_t> dims) {
  std::size_t known = 1;
  std::size_t inferred = dims.size();
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (inferred != dims.size()) {
        throw ShapeError(fmt::format("reshape: only one dimension may be -1 ({} vs [{}])", from,
                                     fmt::join(dims, ", ")));
      }
      inferred = i;
    } else if (dims[i] < 0) {
      throw ShapeError(fmt::format("reshape: negative dimension {} ({} vs [{}])", dims[i], from,
                                   fmt::join(dims, ", ")));
    } else {
      known *= static_cast<std::size_t>(dims[i]);
    }
  }
  if (inferred != dims.size()) {
    if (known == 0 || from.numel() % known != 0) {
      throw ShapeError(fmt::format("reshape: cannot infer the -1 dimension ({} vs [{}])", from,
                                   fmt::join(dims, ", ")));
    }
    dims[inferred] = static_cast<std::int64_t>(from.numel() / known);
  }
  Shape result(std::move(dims));
  if (result.numel() != from.numel()) {
    throw ShapeError(fmt::format("reshape: element counts differ ({} has {}, {} has {})", from,
                                 from.numel(), result, result.numel()));
  }
  return result;
}

// Where PyTorch wraps an axis of a scalar as if it had one axis (squeeze, flatten): 0 and -1.
std::size_t normalize_axis_scalar_ok(const Shape& shape, std::int64_t axis, std::string_view op) {
  if (shape.rank() == 0 && (axis == 0 || axis == -1)) return 0;
  return shape.normalize_axis(axis, op);
}

// Same values in a new shape: the kernel of squeeze, unsqueeze and flatten, each its own node so
// the tape names the op the user called.
Tensor with_shape(const OpInfo& op, const Tensor& x, Shape shape, std::source_location where) {
  Values values(x.values().begin(), x.values().end());
  return record(
      op, std::move(shape), std::move(values), {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{reshape(g, in[0].shape().dims())};
      },
      where);
}

// The size of axis `a` after slicing start:stop:step (start <= stop already clamped).
std::int64_t slice_length(std::int64_t start, std::int64_t stop, std::int64_t step) {
  return stop <= start ? 0 : (stop - start + step - 1) / step;
}

// x seen as [outer, n, inner] around `axis` -> y [outer, m, inner] with
// y[o, k, i] = x[o, start + k step, i].
Values gather_axis(const Tensor& x, const kernels::AxisSplit& s, std::size_t start, std::size_t m,
                   std::size_t step) {
  const std::span<const double> xv = x.values();
  Values y(s.outer * m * s.inner);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < m; ++k) {
      const double* from = xv.data() + (o * s.n + start + k * step) * s.inner;
      std::copy(from, from + s.inner, y.data() + (o * m + k) * s.inner);
    }
  }
  return y;
}

Shape with_axis_size(const Shape& shape, std::size_t axis, std::int64_t size) {
  std::vector<std::int64_t> dims = shape.dims();
  dims[axis] = size;
  return Shape(std::move(dims));
}
}  // namespace

Tensor reshape(const Tensor& x, std::vector<std::int64_t> dims, std::source_location where) {
  Shape target = infer_shape(x.shape(), std::move(dims));
  if (target == x.shape()) return x;
  const std::span<const double> xv = x.values();
  Values values(xv.size());
  parallel_for(xv.size(), parallel_grain_cheap, [&](std::size_t begin, std::size_t end) {
    std::copy(xv.begin() + static_cast<std::ptrdiff_t>(begin),
              xv.begin() + static_cast<std::ptrdiff_t>(end),
              values.begin() + static_cast<std::ptrdiff_t>(begin));
  });
  return record(
      {"reshape", "dx = reshape(g, x.shape)"}, std::move(target), std::move(values), {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{reshape(g, in[0].shape().dims())};
      },
      where);
}

Tensor transpose(const Tensor& x, std::int64_t axis_a, std::int64_t axis_b,
                 std::source_location where) {
  const std::size_t a = x.shape().normalize_axis(axis_a, "transpose");
  const std::size_t b = x.shape().normalize_axis(axis_b, "transpose");
  std::vector<std::int64_t> dims = x.shape().dims();
  std::swap(dims[a], dims[b]);
  Shape out(std::move(dims));
  // Walk the output in order, reading x through its strides with the two axes swapped.
  std::vector<std::size_t> strides = x.shape().strides();
  std::swap(strides[a], strides[b]);
  const std::span<const double> xv = x.values();
  Values y(out.numel());
  detail::for_each_broadcast(out, strides, strides,
                             [&](std::size_t o, std::size_t xi, std::size_t) { y[o] = xv[xi]; });
  return record(
      {"transpose", "dx = transpose(g, axis_a, axis_b)"}, std::move(out), std::move(y), {x},
      [a, b](const Tensor& g, const Tensor&, Inputs) {
        return Grads{transpose(g, static_cast<std::int64_t>(a), static_cast<std::int64_t>(b))};
      },
      where);
}

Tensor transpose(const Tensor& x, std::source_location where) {
  if (x.rank() != 2) {
    throw ShapeError(
        fmt::format("transpose: the matrix transpose needs a 2-D tensor, got shape {}; "
                    "use transpose(x, axis_a, axis_b) for other ranks",
                    x.shape()));
  }
  return transpose(x, 0, 1, where);
}

Tensor squeeze(const Tensor& x, std::source_location where) {
  std::vector<std::int64_t> dims;
  for (std::int64_t d : x.shape().dims()) {
    if (d != 1) dims.push_back(d);
  }
  if (dims.size() == x.rank()) return x;
  return with_shape({"squeeze", "dx = reshape(g, x.shape)"}, x, Shape(std::move(dims)), where);
}

Tensor squeeze(const Tensor& x, std::int64_t axis, std::source_location where) {
  const std::size_t a = normalize_axis_scalar_ok(x.shape(), axis, "squeeze");
  if (x.rank() == 0 || x.shape()[a] != 1) return x;  // PyTorch: a no-op, not an error
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(a));
  return with_shape({"squeeze", "dx = reshape(g, x.shape)"}, x, Shape(std::move(dims)), where);
}

Tensor unsqueeze(const Tensor& x, std::int64_t axis, std::source_location where) {
  // The axis indexes the result, which has one axis more than x.
  const auto rank = static_cast<std::int64_t>(x.rank());
  if (axis < -rank - 1 || axis > rank) {
    throw AxisError(
        fmt::format("unsqueeze: axis {} is out of range for inserting into a tensor of rank {} "
                    "(shape {}); valid axes are {}..{}",
                    axis, rank, x.shape(), -rank - 1, rank));
  }
  const auto a = static_cast<std::size_t>(axis < 0 ? axis + rank + 1 : axis);
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.insert(dims.begin() + static_cast<std::ptrdiff_t>(a), 1);
  return with_shape({"unsqueeze", "dx = reshape(g, x.shape)"}, x, Shape(std::move(dims)), where);
}

Tensor flatten(const Tensor& x, std::int64_t start, std::int64_t end, std::source_location where) {
  const std::size_t a = normalize_axis_scalar_ok(x.shape(), start, "flatten");
  const std::size_t b = normalize_axis_scalar_ok(x.shape(), end, "flatten");
  if (a > b) {
    throw AxisError(
        fmt::format("flatten: start axis {} comes after end axis {} (axes {} and {} of shape {})",
                    start, end, a, b, x.shape()));
  }
  if (x.rank() == 0) {
    return with_shape({"flatten", "dx = reshape(g, x.shape)"}, x, Shape{1}, where);
  }
  if (a == b) return x;
  const std::vector<std::int64_t>& in = x.shape().dims();
  std::vector<std::int64_t> dims(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(a));
  dims.push_back(std::accumulate(in.begin() + static_cast<std::ptrdiff_t>(a),
                                 in.begin() + static_cast<std::ptrdiff_t>(b) + 1, std::int64_t{1},
                                 std::multiplies<>()));
  dims.insert(dims.end(), in.begin() + static_cast<std::ptrdiff_t>(b) + 1, in.end());
  return with_shape({"flatten", "dx = reshape(g, x.shape)"}, x, Shape(std::move(dims)), where);
}

Tensor permute(const Tensor& x, std::vector<std::int64_t> dims, std::source_location where) {
  if (dims.size() != x.rank()) {
    throw ShapeError(
        fmt::format("permute: needs one axis per dimension, got {} axes [{}] for a tensor of rank "
                    "{} (shape {})",
                    dims.size(), fmt::join(dims, ", "), x.rank(), x.shape()));
  }
  std::vector<std::int64_t> inverse(dims.size(), -1);
  std::vector<std::int64_t> out_dims(dims.size());
  const std::vector<std::size_t> x_strides = x.shape().strides();
  std::vector<std::size_t> strides(dims.size());  // x's stride for each axis of the result
  for (std::size_t k = 0; k < dims.size(); ++k) {
    const std::size_t d = x.shape().normalize_axis(dims[k], "permute");
    if (inverse[d] != -1) {
      throw ValueError(fmt::format("permute: axis {} appears twice in [{}] (shape {})", d,
                                   fmt::join(dims, ", "), x.shape()));
    }
    inverse[d] = static_cast<std::int64_t>(k);
    out_dims[k] = x.shape()[d];
    strides[k] = x_strides[d];
  }
  Shape out(std::move(out_dims));
  // Walk the result in order, reading x through its permuted strides.
  const std::span<const double> xv = x.values();
  Values y(out.numel());
  detail::for_each_broadcast(out, strides, strides,
                             [&](std::size_t o, std::size_t xi, std::size_t) { y[o] = xv[xi]; });
  return record(
      {"permute", "dx = permute(g, inverse(dims))"}, std::move(out), std::move(y), {x},
      [inverse = std::move(inverse)](const Tensor& g, const Tensor&, Inputs) {
        return Grads{permute(g, inverse)};
      },
      where);
}

Tensor expand(const Tensor& x, std::vector<std::int64_t> shape, std::source_location where) {
  const std::size_t rank = x.rank();
  if (shape.size() < rank) {
    throw ShapeError(
        fmt::format("expand: the target [{}] has fewer dimensions than the tensor ({} vs [{}])",
                    fmt::join(shape, ", "), x.shape(), fmt::join(shape, ", ")));
  }
  const std::size_t lead = shape.size() - rank;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && i >= lead) shape[i] = x.shape()[i - lead];
    if (shape[i] < 0) {
      throw ShapeError(fmt::format(
          "expand: size {} at position {} is not allowed ({} vs [{}]); {}", shape[i], i, x.shape(),
          fmt::join(shape, ", "),
          shape[i] == -1 ? "-1 keeps a size only where the tensor has an axis, not in a new "
                           "leading one"
                         : "sizes are >= 0, or -1 to keep the tensor's"));
    }
  }
  Shape target(std::move(shape));
  if (target == x.shape()) return x;
  if (!broadcasts_to(x.shape(), target)) {
    throw ShapeError(
        fmt::format("expand: cannot expand ({} vs {}); aligned from the right, each dimension of "
                    "the tensor must equal the target's or be 1",
                    x.shape(), target));
  }
  // y[i] = x[broadcast index of i]
  Values y(target.numel());
  const std::span<const double> xv = x.values();
  const auto x_strides = detail::broadcast_strides(x.shape(), target);
  detail::for_each_broadcast(target, x_strides, x_strides,
                             [&](std::size_t o, std::size_t xi, std::size_t) { y[o] = xv[xi]; });
  return record(
      {"expand", "dx = sum_to(g, x.shape)"}, std::move(target), std::move(y), {x},
      [](const Tensor& g, const Tensor&, Inputs in) { return Grads{sum_to(g, in[0].shape())}; },
      where);
}

Tensor narrow(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t length,
              std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "narrow");
  const auto n = static_cast<std::int64_t>(s.n);
  if (start < -n || start > n) {
    throw ValueError(fmt::format(
        "narrow: start {} is out of range for axis {} of size {} (shape {}); valid starts are "
        "{}..{}",
        start, s.axis, n, x.shape(), -n, n));
  }
  if (start < 0) start += n;
  if (length < 0 || start + length > n) {
    throw ValueError(fmt::format(
        "narrow: length {} from start {} does not fit axis {} of size {} (shape {}); valid "
        "lengths are 0..{}",
        length, start, s.axis, n, x.shape(), n - start));
  }
  const std::int64_t a = static_cast<std::int64_t>(s.axis);
  return record(
      {"narrow", "dx = slice_backward(g, x.shape, axis, start, start + length, 1)"},
      with_axis_size(x.shape(), s.axis, length),
      gather_axis(x, s, static_cast<std::size_t>(start), static_cast<std::size_t>(length), 1), {x},
      [a, start, length](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{slice_backward(g, in[0].shape(), a, start, start + length, 1)};
      },
      where);
}

Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t stop,
             std::int64_t step, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "slice");
  if (step <= 0) {
    throw ValueError(
        fmt::format("slice: step must be at least 1, got {} (axis {} of shape {}); negative "
                    "steps are not supported, as in PyTorch",
                    step, s.axis, x.shape()));
  }
  // Python's rules: negative bounds count from the end, then both clamp to [0, n].
  const auto n = static_cast<std::int64_t>(s.n);
  const auto clamp = [n](std::int64_t v) {
    return std::clamp(v < 0 ? v + n : v, std::int64_t{0}, n);
  };
  start = clamp(start);
  stop = std::max(start, clamp(stop));
  const std::int64_t m = slice_length(start, stop, step);
  const std::int64_t a = static_cast<std::int64_t>(s.axis);
  return record(
      {"slice", "dx = slice_backward(g, x.shape, axis, start, stop, step)"},
      with_axis_size(x.shape(), s.axis, m),
      gather_axis(x, s, static_cast<std::size_t>(start), static_cast<std::size_t>(m),
                  static_cast<std::size_t>(step)),
      {x},
      [a, start, stop, step](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{slice_backward(g, in[0].shape(), a, start, stop, step)};
      },
      where);
}

Tensor select(const Tensor& x, std::int64_t axis, std::int64_t index, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "select");
  const auto n = static_cast<std::int64_t>(s.n);
  if (index < -n || index >= n) {
    throw ValueError(
        fmt::format("select: index {} is out of range for axis {} of size {} (shape {}); valid "
                    "indices are {}..{}",
                    index, s.axis, n, x.shape(), -n, n - 1));
  }
  if (index < 0) index += n;
  const std::int64_t a = static_cast<std::int64_t>(s.axis);
  return record(
      {"select", "dx = slice_backward(unsqueeze(g, axis), x.shape, axis, index, index + 1, 1)"},
      kernels::reduced_shape(x.shape(), s.axis, false),
      gather_axis(x, s, static_cast<std::size_t>(index), 1, 1), {x},
      [a, index](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{slice_backward(unsqueeze(g, a), in[0].shape(), a, index, index + 1, 1)};
      },
      where);
}

Tensor slice_backward(const Tensor& g, const Shape& input_shape, std::int64_t axis,
                      std::int64_t start, std::int64_t stop, std::int64_t step,
                      std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(input_shape, axis, "slice_backward");
  const auto n = static_cast<std::int64_t>(s.n);
  if (step < 1 || start < 0 || start > stop || stop > n) {
    throw ValueError(fmt::format(
        "slice_backward: needs 0 <= start <= stop <= {} and step >= 1, got start {}, stop {}, "
        "step {} (axis {} of shape {})",
        n, start, stop, step, s.axis, input_shape));
  }
  const std::int64_t m = slice_length(start, stop, step);
  const Shape g_shape = with_axis_size(input_shape, s.axis, m);
  if (g.shape() != g_shape) {
    throw ShapeError(fmt::format(
        "slice_backward: the gradient must have the slice's shape ({} vs {})", g.shape(), g_shape));
  }
  // y [outer, n, inner] = 0; y[o, start + k step, i] = g[o, k, i]
  const std::span<const double> gv = g.values();
  Values y(input_shape.numel(), 0.0);
  const auto mm = static_cast<std::size_t>(m);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < mm; ++k) {
      const double* from = gv.data() + (o * mm + k) * s.inner;
      const std::size_t row = static_cast<std::size_t>(start) + k * static_cast<std::size_t>(step);
      std::copy(from, from + s.inner, y.data() + (o * s.n + row) * s.inner);
    }
  }
  const std::int64_t a = static_cast<std::int64_t>(s.axis);
  return record(
      {"slice_backward", "dg = slice(g2, axis, start, stop, step)"}, input_shape, std::move(y), {g},
      [a, start, stop, step](const Tensor& g2, const Tensor&, Inputs) {
        return Grads{slice(g2, a, start, stop, step)};
      },
      where);
}

}  // namespace tapegrad
