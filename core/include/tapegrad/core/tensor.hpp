#pragma once
// Tensor: a handle to contiguous row-major doubles with a shape. Copies of a handle share one
// tensor (as in PyTorch); every op returns a new tensor, nothing is modified in place except
// through mutable_values() on leaves (what optimizers do).
//
// A tensor is either
//   - a leaf: made by a factory (zeros, from_values, randn, ...) or by detach(); if it
//     requires_grad, backward() accumulates into its grad() until zero_grad();
//   - a result recorded on a Tape: made by an op while a tape was recording and some input
//     required grad. It remembers its node; gradients flow through it to the leaves.
// Tensors computed with no tape recording (evaluation, no-grad scopes) are constant leaves.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/shape.hpp"

namespace tapegrad {

class Tensor;

namespace detail {
// Where tensor values live (see Values). A training step frees what the step before allocated,
// in the same sizes: buffers of up to 256 bytes (scalars, small vectors) come from per-thread free
// lists, buffers of 64 KiB and more from a per-thread cache of freed buffers of the same size
// (at most 256 MiB held per thread), so a step neither calls malloc for its scalars nor page-faults
// its large buffers in again after glibc gave them back to the system. Under AddressSanitizer
// every buffer is a fresh heap block.
void* take_value_buffer(std::size_t bytes);  // throws std::bad_alloc
void give_value_buffer(void* pointer, std::size_t bytes) noexcept;

template <class T>
struct ValueAllocator {
  using value_type = T;
  ValueAllocator() = default;
  template <class U>
  ValueAllocator(const ValueAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(take_value_buffer(n * sizeof(T)));
  }
  void deallocate(T* pointer, std::size_t n) noexcept { give_value_buffer(pointer, n * sizeof(T)); }
  // Default-initialisation, so that Values(n) leaves the doubles unset (as new double[n]): a
  // kernel that writes every element does not pay for zero-filling first.
  template <class U>
  void construct(U* pointer) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(pointer)) U;
  }
  template <class U, class... Args>
  void construct(U* pointer, Args&&... args) {
    ::new (static_cast<void*>(pointer)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const ValueAllocator<U>&) const noexcept {
    return true;
  }
};
}  // namespace detail

// A tensor's values: a std::vector<double> whose memory comes from tapegrad's per-thread buffer
// cache. One difference from std::vector<double>: `Values v(n)` (and `v.resize(n)`) leave the new
// elements unset; write `Values v(n, 0.0)` for zeros. Kernels allocate with allocate_values.
using Values = std::vector<double, detail::ValueAllocator<double>>;

namespace detail {
struct TapeState;

struct TensorImpl {
  // A constructor, not value-initialisation: make_shared of an aggregate zero-fills all of its
  // ~140 bytes first (a `rep stos`, a tenth of W1's time) before the members are set.
  TensorImpl(Shape shape_, Values values_) : shape(std::move(shape_)), values(std::move(values_)) {}
  Shape shape;
  Values values;  // row-major, shape.numel() elements
  bool requires_grad = false;
  // Leaves only: the accumulated gradient, null until a backward reaches this leaf.
  std::shared_ptr<TensorImpl> grad;
  // Recorded results only: the tape and the node that produced this tensor. `stamp` is the
  // tape's stamp when it was recorded; a clear() renews the tape's stamp, so a mismatch means the
  // node is gone.
  std::weak_ptr<TapeState> tape;
  std::uint64_t stamp = 0;
  std::size_t node = 0;
  std::string_view op;  // the producing op's name ("" for a leaf)
};
}  // namespace detail

// Receives traced backward's lines, one call per line (see BackwardOptions::trace).
using TraceSink = std::function<void(std::string_view line)>;
// A TraceSink that prints each line to standard output.
void print_trace(std::string_view line);

struct Node;
// One step of a backward sweep, as data (BackwardOptions::observe): the node visited (its index on
// the tape and the node itself), the gradient g = dLoss/d(its result), complete at this point,
// and the gradient sent to each input, already summed to the input's shape (an undefined Tensor
// for an input that gets none: a constant, or no gradient from the rule).
struct BackwardStep {
  std::size_t index;
  const Node& node;
  const Tensor& grad;
  std::span<const Tensor> input_grads;
};
// Receives one call per node the sweep visits, newest node first. What the HTML stepper records.
using BackwardObserver = std::function<void(const BackwardStep& step)>;

struct BackwardOptions {
  // Record the backward sweep itself on the tape, so the gradients can be differentiated again
  // (Hessians, Hessian-vector products). The gradients put into leaves are then tape results.
  bool create_graph = false;
  // Traced backward: when set, every step of the sweep is described here: the node, its rule in
  // words, the incoming gradient and the gradient sent to each input. The chain rule, step by
  // step: loss.backward({.trace = tapegrad::print_trace}).
  TraceSink trace = {};
  // Structured traced backward: every step of the sweep as data (BackwardStep), for tools that
  // show the sweep (tapegrad::write_html). Unset, the sweep does not collect anything for it.
  BackwardObserver observe = {};
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false; like PyTorch's None grad
  explicit Tensor(std::shared_ptr<detail::TensorImpl> impl) : impl_(std::move(impl)) {}

  // A leaf holding `values` with `shape`; throws ShapeError if the counts differ.
  static Tensor from_values(Values values, Shape shape);
  // The same from a std::vector<double> (copied into Values).
  template <class Vector>
  requires std::same_as<std::remove_cvref_t<Vector>, std::vector<double>>
  static Tensor from_values(Vector&& values, Shape shape) {
    return from_values(Values(values.begin(), values.end()), std::move(shape));
  }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  std::size_t rank() const { return impl().shape.rank(); }
  std::size_t numel() const { return impl().values.size(); }
  std::span<const double> values() const { return impl().values; }
  // Writable values of a leaf (optimizers, data loaders). A recorded result's values are saved
  // for backward, so writing them is an AutogradError.
  std::span<double> mutable_values();

  // The single value of a one-element tensor; ValueError otherwise.
  double item() const;
  // The element at a multi-index, e.g. t.at({1, 2}); ValueError when out of range.
  double at(std::initializer_list<std::int64_t> index) const;

  bool requires_grad() const { return impl().requires_grad; }
  // Leaves only: mark (or unmark) this tensor as a parameter whose gradient backward() fills.
  Tensor& requires_grad_(bool enabled = true);
  // True for factory-made and detached tensors, false for results recorded on a tape.
  bool is_leaf() const { return impl().op.empty(); }
  // The op that produced this tensor, "" for a leaf.
  std::string_view op() const { return impl().op; }

  // Leaves only: the gradient accumulated so far (undefined until a backward reaches the leaf).
  // Asking a recorded result for its gradient is an AutogradError: use tapegrad::grad(y, x).
  Tensor grad() const;
  void set_grad(const Tensor& grad);
  // Forgets the accumulated gradient (the next backward starts from nothing, as PyTorch's
  // zero_grad(set_to_none=True)).
  void zero_grad();

  // Reverse sweep from this tensor. A scalar needs no seed; a non-scalar needs `seed`, the
  // gradient of some scalar with respect to this tensor (same shape).
  void backward(BackwardOptions options = {}) const;
  void backward(const Tensor& seed, BackwardOptions options = {}) const;

  // A new leaf with a copy of the values, cut from any tape; requires_grad is false.
  Tensor detach() const;

  // Identity, not value equality: do both handles name the same tensor?
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // Inline, with the error out of line: shape(), values() and requires_grad() go through here on
  // every op and every sweep step.
  detail::TensorImpl& impl() const {
    if (!impl_) [[unlikely]]
      throw_undefined();
    return *impl_;
  }
  const std::shared_ptr<detail::TensorImpl>& impl_ptr() const { return impl_; }

 private:
  [[noreturn]] static void throw_undefined();
  std::shared_ptr<detail::TensorImpl> impl_;
};

// A buffer for the values of a tensor of `shape`, every element `fill`: what the factories and the
// op kernels allocate their results with (a custom op's kernel should too). Running out of memory
// is an AllocationError naming `op`, the shape and the bytes asked for, never a bare
// std::bad_alloc:
//   "zeros: out of memory allocating 68719476736 bytes (64 GiB) for a tensor of shape [8589934592]"
Values allocate_values(std::string_view op, const Shape& shape, double fill = 0.0);

// Factories. Each returns a leaf with requires_grad false; chain .requires_grad_() for parameters:
// ```cpp
// auto w = tapegrad::zeros({3, 4}).requires_grad_();
// ```
// A shape too large for any buffer is a ShapeError (Shape checks it); running out of memory is an
// AllocationError naming the factory, the shape and the bytes.
Tensor zeros(const Shape& shape);
Tensor ones(const Shape& shape);
Tensor full(const Shape& shape, double value);
Tensor scalar(double value);  // shape []
Tensor from_values(Values values, const Shape& shape);
template <class Vector>
requires std::same_as<std::remove_cvref_t<Vector>, std::vector<double>> Tensor
from_values(Vector&& values, const Shape& shape) {
  return Tensor::from_values(std::forward<Vector>(values), shape);
}
// One number of a 1-D tensor literal. A class rather than double on purpose: it makes
// tensor({{0.0}, {1.0}}) (one column) choose the rows overload instead of being ambiguous.
struct Element {
  double value;
  Element(double v) : value(v) {}  // NOLINT: implicit, so tensor({1, 2.5}) just works
};
// 1-D tensor from a list: tensor({1.0, 2.0, 3.0}) has shape [3].
Tensor tensor(std::initializer_list<Element> values);
// 2-D tensor from rows: tensor({{1, 2}, {3, 4}}) has shape [2, 2]; ragged rows are a ShapeError.
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);

}  // namespace tapegrad

// Prints values with their shape, e.g. "tensor([[1, 2], [3, 4]], shape=[2, 2], op=sigmoid)".
// Large tensors show their first and last elements per row ("...").
template <>
struct fmt::formatter<tapegrad::Tensor> : fmt::formatter<std::string_view> {
  format_context::iterator format(const tapegrad::Tensor& tensor, format_context& ctx) const;
};
