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
#include <atomic>
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
#include "tapegrad/core/values.hpp"

namespace tapegrad {

class Tensor;

namespace detail {
struct TapeState;
struct OpDescriptor;

// What a tensor's block knows of the tape that recorded it (TapeState begins with this): enough
// for a handle to tell, without a call, whether that tape is on the releasing thread.
struct TapeHead {
  std::uint64_t stamp = 0;       // renewed by every clear() (atomic_ref: read across threads)
  const void* thread = nullptr;  // this_thread_token() of the thread it records on
};
// A per-thread address, cheaper to read than std::this_thread::get_id().
inline thread_local constinit char this_thread_marker = 0;
inline const void* this_thread_token() noexcept {
  return &this_thread_marker;
}
// The innermost tape recording on this thread (tape.cpp keeps it with recording_state).
inline thread_local constinit const TapeHead* recording_head = nullptr;

// One tensor is one heap block: this header, then (for a recorded result) its tape node (where
// the op was called, its inputs, its rule's captured state), then its values: a few doubles
// inline, or the buffer taken over from a Values. A training step makes and frees thousands of
// these, so the block comes from per-thread free lists (BlockLists), and nothing else is
// allocated per op.
//
//   offset 0   count, node, block_bytes, values_at, n_inputs, flags   (24 bytes)
//          24  shape (8), op (8), leaf or result part (16)
//          56  results: where (8), inputs (8 each, uncounted: the tape keeps them alive), rule
//          ..  values: inline doubles, or HeapValues (the buffer's pointer and capacity)
struct HeapValues {
  double* data;
  std::size_t capacity;  // in doubles: the buffer goes back with give_value_buffer
};

struct TensorImpl {
  static constexpr std::uint32_t requires_grad_flag = 1;
  static constexpr std::uint32_t inline_values_flag = 2;    // the doubles are in the block
  static constexpr std::uint32_t rule_destructor_flag = 4;  // the node's rule state needs one
  // Every handle is the backward sweep's, on its thread: counted with plain loads and stores.
  // Set by the sweep only on a gradient a rule returned with one handle, cleared before any
  // gradient leaves the sweep (autograd.cpp, "private gradients").
  static constexpr std::uint32_t private_flag = 8;
  // Tensors of at most this many elements keep their values in their block (a Values that large
  // is always on the heap, so its buffer can be taken over).
  static constexpr std::size_t inline_values = Values::small_capacity;

  // (number of Tensor handles << 1) | 1 while a tape holds this result for its backward.
  std::uint32_t count;
  std::uint32_t node;         // recorded results: the node's index on its tape
  std::uint32_t block_bytes;  // the block's size, for the free lists
  std::uint32_t values_at;    // offset of the values (inline doubles or HeapValues)
  std::uint32_t n_inputs;     // recorded results while their node is alive
  std::uint32_t flags;
  Shape shape;
  const OpDescriptor* op;  // the op that produced this tensor; null for a leaf
  struct LeafPart {
    TensorImpl* grad;         // a counted handle on the accumulated gradient, or null
    std::uint64_t pinned_by;  // stamp of the last tape that took a handle on this leaf
  };
  struct ResultPart {
    TapeHead* tape;       // the recording tape (TapeState objects are never freed)
    std::uint64_t stamp;  // its stamp when this result was recorded
  };
  // Named member types: anonymous structs inside an anonymous union are a compiler extension.
  union {
    LeafPart leaf;
    ResultPart result;
  };

  bool is_leaf() const { return op == nullptr; }
  bool requires_grad() const { return (flags & requires_grad_flag) != 0; }
  std::size_t numel() const { return shape.numel(); }
  double* data() {
    std::byte* at = reinterpret_cast<std::byte*>(this) + values_at;
    if (flags & inline_values_flag) return reinterpret_cast<double*>(at);
    return std::launder(reinterpret_cast<HeapValues*>(at))->data;
  }
  const double* data() const { return const_cast<TensorImpl*>(this)->data(); }
  // The buffer of a tensor whose values are not inline (null otherwise).
  HeapValues* heap_values() {
    if (flags & inline_values_flag) return nullptr;
    return std::launder(
        reinterpret_cast<HeapValues*>(reinterpret_cast<std::byte*>(this) + values_at));
  }
  // Puts `values` (numel() of them) into the block at values_at (inline_values_flag set as
  // wanted): copied when inline, else their heap buffer is taken over.
  void store_values(Values&& values) noexcept {
    std::byte* at = reinterpret_cast<std::byte*>(this) + values_at;
    if (flags & inline_values_flag) {
      copy_small(values.data(), values.size(), reinterpret_cast<double*>(at));
    } else {
      auto* heap = ::new (at) HeapValues;
      heap->data = values.release_heap(heap->capacity);
    }
  }
  // Is this result still valid on its tape (recorded and not cleared since)?
  bool on_live_tape() const {
    return std::atomic_ref<std::uint64_t>(result.tape->stamp).load(std::memory_order_relaxed) ==
           result.stamp;
  }
};

// Per-thread free lists of tensor blocks, one per 16-byte size class up to 1 KiB, read inline on
// every op (a constinit thread_local is one %fs-relative load). The policy (how much a thread
// keeps, what happens at thread exit) is in block.cpp, which the slow paths call.
struct BlockLists {
  static constexpr std::size_t granule = 16;
  static constexpr std::size_t max_pooled_bytes = 1024;
  static constexpr std::size_t max_cached_bytes = std::size_t{256} << 20;
  void* heads[max_pooled_bytes / granule];
  std::size_t cached_bytes;
  bool open;    // the lists take blocks back: from the first give until the thread exits
  bool closed;  // the thread is exiting: blocks go back to the heap
};
inline thread_local constinit BlockLists block_lists{};
void* take_block_slow(std::size_t bytes);
void give_block_slow(void* block, std::size_t bytes) noexcept;

// A block of `bytes` (a block_size), uninitialised: from this thread's lists, else from the
// heap. Throws std::bad_alloc.
inline void* take_block(std::size_t bytes) {
  if constexpr (recycle_blocks) {
    if (bytes <= BlockLists::max_pooled_bytes) {
      void*& head = block_lists.heads[bytes / BlockLists::granule - 1];
      if (void* block = head; block != nullptr) [[likely]] {
        head = *static_cast<void**>(block);
        block_lists.cached_bytes -= bytes;
        return block;
      }
    }
  }
  return take_block_slow(bytes);
}
inline void give_block(void* block, std::size_t bytes) noexcept {
  if constexpr (recycle_blocks) {
    BlockLists& lists = block_lists;
    if (bytes <= BlockLists::max_pooled_bytes && lists.open &&
        lists.cached_bytes + bytes <= BlockLists::max_cached_bytes) [[likely]] {
      void*& head = lists.heads[bytes / BlockLists::granule - 1];
      *static_cast<void**>(block) = head;
      head = block;
      lists.cached_bytes += bytes;
      return;
    }
  }
  give_block_slow(block, bytes);
}

// The size class of a block of `bytes`: rounded up to a multiple of the granule.
inline std::size_t block_size(std::size_t bytes) {
  return (bytes + BlockLists::granule - 1) & ~(BlockLists::granule - 1);
}
// A block of at least `bytes` with a default-initialised TensorImpl at its start (an empty
// shape; every other field unset but block_bytes). Throws std::bad_alloc.
inline TensorImpl* new_impl(std::size_t bytes) {
  bytes = block_size(bytes);
  auto* impl = ::new (take_block(bytes)) TensorImpl;
  impl->block_bytes = static_cast<std::uint32_t>(bytes);
  return impl;
}
// Destroys the TensorImpl (its shape; what follows it is the caller's) and gives the block back.
inline void delete_impl(TensorImpl* impl) noexcept {
  const std::size_t bytes = impl->block_bytes;
  impl->~TensorImpl();
  give_block(impl, bytes);
}

// A leaf's values and `values` (as many elements) trade places: no copy when the leaf's values
// are on the heap, an element-wise swap when they are inline. What Optimizer::step does.
void swap_values(Tensor& leaf, Values& values) noexcept;

// Frees a block whose last handle (and any tape's hold) is gone: its gradient handle, values,
// shape and memory. The common case (an inline tensor without gradient) is inline.
void destroy_slow(TensorImpl* impl) noexcept;
inline void destroy(TensorImpl* impl) noexcept {
  if ((impl->flags & TensorImpl::inline_values_flag) &&
      (!impl->is_leaf() || impl->leaf.grad == nullptr)) [[likely]] {
    delete_impl(impl);
  } else {
    destroy_slow(impl);
  }
}

// Handles are counted in steps of 2 (bit 0 is the tape's hold). As Shape's count (shape.hpp): a
// copy is one atomic add; the last handle frees with no atomic operation; a private gradient's
// count (private_flag) is a plain one.
inline void retain(TensorImpl* impl) noexcept {
  std::atomic_ref<std::uint32_t> count(impl->count);
  if (impl->flags & TensorImpl::private_flag) {
    count.store(count.load(std::memory_order_relaxed) + 2, std::memory_order_relaxed);
  } else {
    count.fetch_add(2, std::memory_order_relaxed);
  }
}
void release_shared(TensorImpl* impl) noexcept;  // the atomic cases (tensor.cpp)
inline void release(TensorImpl* impl) noexcept {
  std::atomic_ref<std::uint32_t> count(impl->count);
  const std::uint32_t now = count.load(std::memory_order_acquire);
  if (now == 2) return destroy(impl);  // the only handle, and no tape holds it
  if (impl->flags & TensorImpl::private_flag) {
    count.store(now - 2, std::memory_order_relaxed);
    return;
  }
  // The only handle, held by a tape of this thread: nobody else can touch the count (another
  // handle would show in it, and the tape releases its hold on this thread), so no atomic add.
  if (now == 3 &&
      (impl->result.tape == recording_head || impl->result.tape->thread == this_thread_token())) {
    count.store(1, std::memory_order_relaxed);
    return;
  }
  release_shared(impl);
}

[[noreturn]] void throw_fill_error(std::size_t count, const Shape& shape);
// A ShapeError unless `count` values fill `shape`.
inline void check_fill(std::size_t count, const Shape& shape) {
  if (count != shape.numel()) [[unlikely]]
    throw_fill_error(count, shape);
}
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
  Tensor() noexcept = default;  // an undefined tensor: defined() is false; like PyTorch's None grad
  Tensor(const Tensor& other) noexcept : impl_(other.impl_) {
    if (impl_ != nullptr) detail::retain(impl_);
  }
  Tensor(Tensor&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
  Tensor& operator=(const Tensor& other) noexcept {
    Tensor(other).swap(*this);
    return *this;
  }
  Tensor& operator=(Tensor&& other) noexcept {
    Tensor(std::move(other)).swap(*this);
    return *this;
  }
  ~Tensor() {
    if (impl_ != nullptr) detail::release(impl_);
  }
  void swap(Tensor& other) noexcept { std::swap(impl_, other.impl_); }

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
  std::size_t numel() const { return impl().shape.numel(); }
  std::span<const double> values() const {
    const detail::TensorImpl& i = impl();
    return {i.data(), i.shape.numel()};
  }
  // Writable values of a leaf (optimizers, data loaders). A recorded result's values are saved
  // for backward, so writing them is an AutogradError.
  std::span<double> mutable_values();

  // The single value of a one-element tensor; ValueError otherwise.
  double item() const;
  // The element at a multi-index, e.g. t.at({1, 2}); ValueError when out of range.
  double at(std::initializer_list<std::int64_t> index) const;

  bool requires_grad() const { return impl().requires_grad(); }
  // Leaves only: mark (or unmark) this tensor as a parameter whose gradient backward() fills.
  Tensor& requires_grad_(bool enabled = true);
  // True for factory-made and detached tensors, false for results recorded on a tape.
  bool is_leaf() const { return impl().is_leaf(); }
  // The op that produced this tensor, "" for a leaf.
  std::string_view op() const;

  // Leaves only: the gradient accumulated so far (undefined until a backward reaches the leaf).
  // Asking a recorded result for its gradient is an AutogradError: use tapegrad::grad(y, x).
  Tensor grad() const;
  // Leaves only (a recorded result has no grad() to set: an AutogradError).
  void set_grad(const Tensor& grad);
  // Forgets the accumulated gradient (the next backward starts from nothing, as PyTorch's
  // zero_grad(set_to_none=True)). Does nothing to a recorded result, which has none.
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
  // The block behind this handle (null when undefined): for identity maps and the engine.
  detail::TensorImpl* impl_ptr() const { return impl_; }
  // A handle that takes over one counted reference to `impl` (the engine's blocks).
  static Tensor adopt(detail::TensorImpl* impl) noexcept {
    Tensor t;
    t.impl_ = impl;
    return t;
  }

 private:
  [[noreturn]] static void throw_undefined();
  detail::TensorImpl* impl_ = nullptr;
};
static_assert(sizeof(Tensor) == sizeof(void*), "a Tensor is one pointer: tapes store them raw");

namespace detail {
// A leaf holding `values` with `shape` (what Tensor::from_values and every op that records no
// node make): one block with the values inline, or taking over their buffer. The caller has
// checked that the values fill the shape.
inline Tensor make_leaf(Values&& values, Shape&& shape) {
  const bool inline_values = values.size() <= TensorImpl::inline_values;
  constexpr std::size_t values_at = sizeof(TensorImpl);
  const std::size_t bytes =
      block_size(values_at + (inline_values ? values.size() * sizeof(double) : sizeof(HeapValues)));
  // Built in one go (no default construction first, no temporaries).
  auto* impl = ::new (take_block(bytes))
      TensorImpl{.count = 2,
                 .node = 0,
                 .block_bytes = static_cast<std::uint32_t>(bytes),
                 .values_at = values_at,
                 .n_inputs = 0,
                 .flags = inline_values ? TensorImpl::inline_values_flag : 0,
                 .shape = std::move(shape),
                 .op = nullptr,
                 .leaf = {.grad = nullptr, .pinned_by = 0}};
  impl->store_values(std::move(values));
  return Tensor::adopt(impl);
}
}  // namespace detail

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
