#pragma once
// The tape: a Wengert list of the ops run while it records. Creation order is a topological
// order, so backward is one sweep from the last node to the first: no recursion, no graph search.
//
// ```cpp
// tapegrad::Tensor w = tapegrad::tensor({0.5, -1.0}).requires_grad_();
// {
//   tapegrad::Tape tape;              // records on this thread until it goes out of scope
//   auto loss = tapegrad::sum(w * w); // every op on a tensor that requires grad adds a node
//   loss.backward();                  // sweeps the nodes in reverse, fills w.grad()
// }                                   // the tape and every intermediate are freed here
// ```
//
// In a training loop, one Tape per step (declared inside the loop), or tape.clear() at the end of
// each step: a Tape around the whole loop keeps every step's intermediates (and warns once, see
// set_tape_growth_warning).
//
// Tapes nest: the innermost live one records. A tensor computed on a tape keeps its value after
// the tape is cleared or destroyed, but differentiating through it is then an AutogradError.
#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <new>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "tapegrad/core/tensor.hpp"
#include "tapegrad/core/tensor_list.hpp"

namespace tapegrad {

// A derivative rule, in PyTorch's derivatives.yaml vocabulary: given `grad` (dLoss/dresult, in
// the result's shape), the op's `result` and its `inputs`, return dLoss/dinput for each input
// (an undefined Tensor for an input that gets none). A rule may return a gradient in the
// result's shape for a broadcast input; the engine sums it down to the input's shape (sum_to).
// Rules are written with differentiable ops so that create_graph can record them. record()
// takes any callable of this signature (a lambda, usually); Rule is the type-erased one. A rule
// returns its gradients and keeps nothing: it must not store its arguments anywhere that outlives
// the call (the sweep counts the gradients it hands a rule without atomic operations).
using Rule = std::function<TensorList(const Tensor& grad, const Tensor& result,
                                      std::span<const Tensor> inputs)>;

// What an op tells the tape about itself: its name and its rule in words, as a student would
// write it ("dx = g * y * (1 - y)"), for traced backward and tape printing. Both must be string
// literals (or live as long as the program, unchanged): the tape tells ops apart by the texts'
// addresses, and keeps its own copy of each text.
struct OpInfo {
  std::string_view name;
  std::string_view rule_text = {};
  OpInfo(const char* op_name) : name(op_name) {}  // NOLINT: a bare name is an OpInfo
  OpInfo(std::string_view op_name, std::string_view rule_in_words = {})
      : name(op_name), rule_text(rule_in_words) {}
};

namespace detail {
// How a node calls and destroys its rule: one table per rule type. A rule without state (a
// lambda that captures nothing) takes no room in the node; it is made afresh to be called.
struct RuleVTable {
  TensorList (*invoke)(void* state, const Tensor& grad, const Tensor& result,
                       std::span<const Tensor> inputs);
  void (*destroy)(void* state) noexcept;  // null when the state needs no destructor
  std::size_t size;                       // 0: stateless
  std::size_t align;
};

template <class Fn>
inline constexpr bool stateless_rule = std::is_empty_v<Fn>&& std::is_default_constructible_v<Fn>&&
    std::is_trivially_destructible_v<Fn>;

template <class Fn>
TensorList invoke_rule(void* state, const Tensor& grad, const Tensor& result,
                       std::span<const Tensor> inputs) {
  if constexpr (stateless_rule<Fn>) {
    return Fn{}(grad, result, inputs);
  } else {
    return (*static_cast<Fn*>(state))(grad, result, inputs);
  }
}
template <class Fn>
void destroy_rule(void* state) noexcept {
  static_cast<Fn*>(state)->~Fn();
}
template <class Fn>
inline constexpr RuleVTable rule_vtable{
    &invoke_rule<Fn>, std::is_trivially_destructible_v<Fn> ? nullptr : &destroy_rule<Fn>,
    stateless_rule<Fn> ? 0 : sizeof(Fn), alignof(Fn)};

// An op as the tape names it: one per (name, rule text, rule type), made on first use and never
// freed, so a node holds one pointer for all three and a tensor's op() outlives every tape.
struct OpDescriptor {
  RuleVTable rule;  // a copy, first: the sweep reads it for every node, one load from the block
  std::string name;
  std::string rule_text;
  // The OpInfo it was made from, compared by address (ops pass string literals).
  const char* name_key;
  const char* rule_key;
  const RuleVTable* rule_type;  // &rule_vtable<Fn>: the identity of the rule's type
  // Two address comparisons: ops pass literals (OpInfo), and one literal has one length.
  bool made_from(const OpInfo& op) const {
    return op.name.data() == name_key && op.rule_text.data() == rule_key;
  }
};
const OpDescriptor* intern_op(const OpInfo& op, const RuleVTable* rule);

// The descriptor of `op` with rule type Fn: a one-entry cache per rule type and thread in front of
// intern_op (an op's call site passes the same literals every time).
template <class Fn>
const OpDescriptor* describe(const OpInfo& op) {
  static thread_local constinit const OpDescriptor* last = nullptr;
  const OpDescriptor* descriptor = last;
  if (descriptor != nullptr && descriptor->made_from(op)) [[likely]]
    return descriptor;
  descriptor = intern_op(op, &rule_vtable<Fn>);
  last = descriptor;
  return descriptor;
}

// Where a recorded result's node lives in its block (TensorImpl's layout, tensor.hpp).
inline constexpr std::size_t where_at = sizeof(TensorImpl);
inline constexpr std::size_t inputs_at =
    (where_at + sizeof(std::source_location) + alignof(Tensor) - 1) / alignof(Tensor) *
    alignof(Tensor);
// Blocks are aligned for any fundamental type; a rule needing more is kept in a box.
inline constexpr std::size_t block_alignment = alignof(std::max_align_t);

inline std::source_location& node_where(TensorImpl* impl) {
  return *std::launder(
      reinterpret_cast<std::source_location*>(reinterpret_cast<std::byte*>(impl) + where_at));
}
// A node's inputs: uncounted handles (the tape holds every result it recorded and a counted
// handle on every leaf a node reads, until it is cleared).
inline Tensor* node_inputs(TensorImpl* impl) {
  return std::launder(reinterpret_cast<Tensor*>(reinterpret_cast<std::byte*>(impl) + inputs_at));
}
inline std::size_t rule_offset(std::size_t inputs, std::size_t align) {
  const std::size_t end = inputs_at + inputs * sizeof(Tensor);
  return (end + align - 1) & ~(align - 1);  // alignments are powers of two: no division
}
inline void* node_rule_state(TensorImpl* impl) {
  return reinterpret_cast<std::byte*>(impl) + rule_offset(impl->n_inputs, impl->op->rule.align);
}

// The tape's holds on its results, in node order: uncounted handles (bit 0 of each block's count
// is the hold), in chunks that never move, so a Node's `result` reference stays valid.
class ResultList {
 public:
  static constexpr std::size_t chunk_size = 1024;

  ResultList() = default;
  ResultList(const ResultList&) = delete;
  ResultList& operator=(const ResultList&) = delete;
  ~ResultList();

  std::size_t size() const { return size_; }
  const Tensor& operator[](std::size_t i) const { return chunks_[i / chunk_size][i % chunk_size]; }
  // Room for one more result: may allocate a chunk (and throw); checks the growth warning.
  void reserve_one(std::size_t sweeps) {
    if (cursor_ == end_) [[unlikely]]
      add_chunk(sweeps);
  }
  // After reserve_one: cannot fail.
  void push(TensorImpl* impl) noexcept {
    ::new (cursor_++) Tensor(Tensor::adopt(impl));
    ++size_;
  }
  // Calls f(result impl) for every entry, oldest first.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t c = 0, left = size_; left > 0; ++c) {
      const std::size_t n = std::min(left, chunk_size);
      for (std::size_t j = 0; j < n; ++j) f(chunks_[c][j].impl_ptr());
      left -= n;
    }
  }
  // Forgets every entry (the caller has released the holds); keeps one chunk for the next step.
  void forget() noexcept;

 private:
  void add_chunk(std::size_t sweeps);
  std::vector<Tensor*> chunks_;
  std::size_t size_ = 0;
  Tensor* cursor_ = nullptr;  // the next free slot of the last chunk
  Tensor* end_ = nullptr;     // the end of the last chunk
};

// One Tape's state. Never freed: a Tape takes one from a pool and gives it back when destroyed,
// so a result can always read its tape's stamp (TapeHead) to know whether it is still on it.
// `stamp` is unique across all tapes and renewed by every clear() and by the Tape's destruction.
struct TapeState : TapeHead {
  std::uint64_t birth = 0;  // the stamp the current Tape started with
  bool alive = false;       // a Tape owns this state now
  bool keep_gradients = false;
  std::size_t sweeps = 0;  // backward sweeps since the last clear (the growth warning)
  ResultList results;
  std::vector<Tensor> pinned;  // counted handles on the leaves the nodes read
  std::vector<Tensor> kept;    // keep_gradients: node i's gradient, when swept

  std::size_t size() const { return results.size(); }
  std::span<const Tensor> inputs_of(std::size_t node) const {
    TensorImpl* impl = results[node].impl_ptr();
    return {node_inputs(impl), impl->n_inputs};
  }
  std::uint64_t current_stamp() const {
    return std::atomic_ref<const std::uint64_t>(stamp).load(std::memory_order_relaxed);
  }
  // Drops every node: each result's rule and hold, the pinned leaves, the kept gradients.
  void clear_nodes() noexcept;
};
}  // namespace detail

// One recorded op as the tape, traced backward and tools (write_html) see it: a view into the
// tape, valid until the tape is cleared or destroyed.
struct RuleRef {
  const detail::RuleVTable* vtable;
  void* state;
  TensorList operator()(const Tensor& grad, const Tensor& result,
                        std::span<const Tensor> inputs) const {
    return vtable->invoke(state, grad, result, inputs);
  }
};
struct Node {
  std::string_view op;
  std::string_view rule_text;
  std::source_location where;  // the user's line that called the op
  std::span<const Tensor> inputs;
  const Tensor& result;
  RuleRef rule;
  Tensor grad;  // dLoss/dresult after a backward, kept only when the tape keeps gradients
};

namespace detail {
// The view of node `index` of `tape` (a live node).
Node node_view(const TapeState& tape, std::size_t index);
// The tape a recorded result is on, or null when that tape has been cleared or destroyed since.
inline TapeState* live_tape(const TensorImpl& result) {
  return result.on_live_tape() ? static_cast<TapeState*>(result.result.tape) : nullptr;
}
// For messages about a result whose tape is gone: "cleared" or "destroyed".
std::string_view stale_tape_fate(const TensorImpl& result);

// This thread's recording switches, read inline by every op (constinit: a %fs-relative load).
inline thread_local constinit TapeState* recording_state = nullptr;  // the innermost tape's
inline thread_local constinit bool grad_enabled = true;
inline thread_local constinit bool anomaly_enabled = false;
}  // namespace detail

class Tape {
 public:
  // Becomes this thread's recording tape until destroyed. The thread's tapes form a stack
  // whatever order they are destroyed in: destroying a tape that is not the innermost (a
  // heap-held `outer.reset()` before `inner.reset()`) takes it out of the middle, and the
  // innermost live tape keeps recording. A Tape belongs to the thread that made it: destroying it
  // on another thread prints a diagnosis to stderr and aborts (that thread's stack would
  // otherwise point at freed memory).
  Tape();
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // Drops every node (and the intermediates they hold). Tensors computed so far keep their values
  // but can no longer be differentiated. Training loops clear once per step.
  void clear();
  std::size_t size() const { return state_->size(); }
  // Keep every node's gradient after backward (off by default: memory stays one value per node).
  // For printing the tape and for teaching; Node::grad holds them.
  void keep_gradients(bool keep = true) { state_->keep_gradients = keep; }
  // Node `index` (a ValueError when out of range), a view valid until the tape is cleared.
  Node node(std::size_t index) const;

  // The innermost tape recording on this thread, or nullptr.
  static Tape* current() { return current_; }

  detail::TapeState* state() const { return state_; }

 private:
  detail::TapeState* state_;
  Tape* enclosing_;           // the tape below this one on its thread's stack, or nullptr
  Tape* enclosed_ = nullptr;  // the tape above it, or nullptr when this one is the innermost
  std::thread::id thread_;    // the thread whose stack this tape is on
  static inline thread_local constinit Tape* current_ = nullptr;  // the innermost live tape
};

// A tape that keeps growing after more than one backward sweep since it was last cleared, past
// `nodes` nodes, is a training loop inside one Tape: its memory grows every step and the program
// slows down. The first such tape in the process prints one warning to stderr saying so and what
// to do (one Tape per step, or tape.clear() each step). 0 turns the warning off; setting it again
// re-arms it. The default is default_tape_growth_warning nodes. Checked once per 256 nodes
// recorded, never per op.
inline constexpr std::size_t default_tape_growth_warning = 10000;
void set_tape_growth_warning(std::size_t nodes);
std::size_t tape_growth_warning();

// While alive, ops on this thread record nothing (evaluation, optimizer updates). Nests.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// The opposite of NoGradGuard: re-enables recording inside a no-grad scope (used by create_graph).
class EnableGradGuard {
 public:
  explicit EnableGradGuard(bool enabled = true);
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

inline bool is_grad_enabled() {
  return detail::grad_enabled;
}

// Anomaly mode: while alive, any op whose forward value, or whose backward gradient, holds a NaN
// or an infinity throws AnomalyError naming the op, its shapes and the line that called it.
// Off by default; when off it costs one flag test per op.
class AnomalyGuard {
 public:
  // `enabled` false pauses anomaly mode inside an anomaly scope (the sweep does, while a rule runs,
  // so a NaN is reported as the op's backward, not as an op inside its rule).
  explicit AnomalyGuard(bool enabled = true);
  ~AnomalyGuard();
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool previous_;
};

inline bool is_anomaly_enabled() {
  return detail::anomaly_enabled;
}

// An op's inputs as record() takes them: a braced list ({x}, {a, b}), a TensorList, a
// std::vector<Tensor> or a span. A view of the tensors' blocks: nothing is copied, so no
// reference count moves (a temporary in the list lives until record() returns).
struct TensorRef {
  detail::TensorImpl* impl;
  TensorRef(const Tensor& t) : impl(t.impl_ptr()) {}  // NOLINT: implicit, so {a, b} lists tensors
};
class OpInputs {
 public:
  // OpInputs is a parameter type: a braced list's array lives until the end of the full
  // expression that calls record(), longer than the view (GCC cannot see that and warns).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
  OpInputs(std::initializer_list<TensorRef> list) : refs_(list.begin()), size_(list.size()) {}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  OpInputs(std::span<const Tensor> tensors) : tensors_(tensors.data()), size_(tensors.size()) {}
  OpInputs(const TensorList& list) : OpInputs(std::span<const Tensor>(list)) {}
  OpInputs(const std::vector<Tensor>& tensors) : OpInputs(std::span<const Tensor>(tensors)) {}
  std::size_t size() const {
    return size_;
  }
  // Input i's block (null for an undefined tensor).
  detail::TensorImpl* impl(std::size_t i) const {
    return refs_ != nullptr ? refs_[i].impl : tensors_[i].impl_ptr();
  }
  // Calls f(i, block) for each input, with one test of the representation for the whole loop.
  template <class F>
  void for_each(F&& f) const {
    if (refs_ != nullptr) {
      for (std::size_t i = 0; i < size_; ++i) f(i, refs_[i].impl);
    } else {
      for (std::size_t i = 0; i < size_; ++i) f(i, tensors_[i].impl_ptr());
    }
  }

 private:
  const TensorRef* refs_ = nullptr;
  const Tensor* tensors_ = nullptr;
  std::size_t size_ = 0;
};

namespace detail {
[[noreturn]] void reject_input(std::string_view op, std::size_t index, const TensorImpl& impl);
// The tape an op with these inputs must be recorded on: the current one when grad mode is on,
// a tape is recording and some input requires grad; null otherwise. Throws AutogradError naming
// `op` if a recorded input's tape was cleared or destroyed, or if it belongs to another tape.
inline TapeState* recording_tape(std::string_view op, const OpInputs& inputs) {
  TapeState* tape = recording_state;
  if (!grad_enabled || tape == nullptr) return nullptr;
  const std::uint64_t stamp = tape->current_stamp();
  bool any_requires_grad = false;
  inputs.for_each([&](std::size_t i, const TensorImpl* impl) {
    if (impl == nullptr || !impl->requires_grad()) return;
    any_requires_grad = true;
    if (!impl->is_leaf() && impl->result.stamp != stamp) [[unlikely]]
      reject_input(op, i, *impl);
  });
  return any_requires_grad ? tape : nullptr;
}
// Anomaly mode's forward check: throws AnomalyError if `values` hold a NaN or an infinity.
void check_forward_anomaly(const OpInfo& op, const OpInputs& inputs, std::span<const double> values,
                           const Shape& shape, std::source_location where);
// The rare parts of recording, out of line: too many inputs (an error), taking a handle on a
// leaf this tape has not pinned yet (pinned_by marks the last tape that took one; a stale mark
// only costs a second handle), a full result chunk (ResultList::reserve_one).
[[noreturn]] void throw_too_many_inputs(const OpDescriptor* op, std::size_t n);
void pin_leaf(TapeState& tape, TensorImpl* leaf, std::uint64_t stamp);

// Records a node on `tape` and returns its result: one block holding the result's header, where,
// the inputs, the rule's state (Fn, none for a stateless rule) and the values. Inline and typed,
// so the rule's size, alignment and destructor are constants; everything that can fail (room for
// the result, the pinned leaves, the block, the rule's construction) comes first, so a failure
// records nothing.
template <class Fn, class RuleFn>
Tensor record_node(TapeState& tape, const OpDescriptor* op, Shape&& shape, Values&& values,
                   const OpInputs& inputs, std::source_location where, RuleFn&& rule) {
  const std::size_t n = inputs.size();
  if (n >= std::numeric_limits<std::uint32_t>::max()) [[unlikely]]
    throw_too_many_inputs(op, n);
  tape.results.reserve_one(tape.sweeps);
  const std::uint64_t stamp = tape.current_stamp();
  inputs.for_each([&](std::size_t, TensorImpl* leaf) {
    if (leaf != nullptr && leaf->is_leaf() &&
        std::atomic_ref<std::uint64_t>(leaf->leaf.pinned_by).load(std::memory_order_relaxed) !=
            stamp) [[unlikely]] {
      pin_leaf(tape, leaf, stamp);
    }
  });
  constexpr std::size_t rule_size = stateless_rule<Fn> ? 0 : sizeof(Fn);
  const std::size_t rule_at = rule_offset(n, alignof(Fn));
  const std::size_t values_at = (rule_at + rule_size + 7) & ~std::size_t{7};
  const bool inline_values = values.size() <= TensorImpl::inline_values;
  const std::size_t bytes =
      block_size(values_at + (inline_values ? values.size() * sizeof(double) : sizeof(HeapValues)));
  // One handle (the one returned) and the tape's hold.
  auto* impl = ::new (take_block(bytes)) TensorImpl{
      .count = 3,
      .node = static_cast<std::uint32_t>(tape.results.size()),
      .block_bytes = static_cast<std::uint32_t>(bytes),
      .values_at = static_cast<std::uint32_t>(values_at),
      .n_inputs = static_cast<std::uint32_t>(n),
      .flags = TensorImpl::requires_grad_flag |
               (std::is_trivially_destructible_v<Fn> ? 0 : TensorImpl::rule_destructor_flag) |
               (inline_values ? TensorImpl::inline_values_flag : 0),
      .shape = std::move(shape),
      .op = op,
      .result = {.tape = &tape, .stamp = stamp}};
  if constexpr (!stateless_rule<Fn>) {
    try {
      ::new (reinterpret_cast<std::byte*>(impl) + rule_at) Fn(std::forward<RuleFn>(rule));
    } catch (...) {
      delete_impl(impl);
      throw;
    }
  }
  // From here nothing can fail.
  ::new (&node_where(impl)) std::source_location(where);
  Tensor* slots = node_inputs(impl);
  inputs.for_each([slots](std::size_t i, TensorImpl* input) {
    ::new (&slots[i]) Tensor(Tensor::adopt(input));  // uncounted: see node_inputs
  });
  impl->store_values(std::move(values));
  tape.results.push(impl);
  return Tensor::adopt(impl);
}
}  // namespace detail

// Builds an op's output tensor and, when it must be recorded, its tape node. Every op ends here;
// an op of one's own, y = 3 x, its kernel and its rule side by side (a real op also takes
// `std::source_location where = std::source_location::current()` and passes it on):
// ```cpp
// auto triple = [](const tapegrad::Tensor& x) {
//   tapegrad::Values values = tapegrad::allocate_values("triple", x.shape());
//   for (std::size_t i = 0; i < values.size(); ++i) values[i] = 3.0 * x.values()[i];
//   return tapegrad::record({"triple", "dx = 3 g"}, x.shape(), std::move(values), {x},
//                           [](const tapegrad::Tensor& g, const tapegrad::Tensor&, auto) {
//                             return tapegrad::TensorList{g * 3.0};
//                           });
// };
// const tapegrad::Tensor y = triple(tapegrad::tensor({1.0, 2.0}));
// ```
// The node (where, inputs, the rule and what it captured) lives in the result's own block: one
// allocation per op, from a per-thread recycler.
template <class RuleFn>
Tensor record(const OpInfo& op, Shape shape, Values&& values, OpInputs inputs, RuleFn&& rule,
              std::source_location where = std::source_location::current()) {
  using Fn = std::decay_t<RuleFn>;
  if constexpr (alignof(Fn) > detail::block_alignment) {
    // Over-aligned state (rare) goes in a box of its own.
    return record(
        op, std::move(shape), std::move(values), inputs,
        [boxed = std::make_unique<Fn>(std::forward<RuleFn>(rule))](
            const Tensor& g, const Tensor& y, std::span<const Tensor> in) -> TensorList {
          return (*boxed)(g, y, in);
        },
        where);
  } else {
    detail::check_fill(values.size(), shape);
    if (detail::anomaly_enabled) [[unlikely]]
      detail::check_forward_anomaly(op, inputs, values, shape, where);
    // No tape or no grad mode (evaluation, every rule in a backward sweep): a plain result,
    // decided before looking at the inputs.
    if (!detail::grad_enabled || detail::recording_state == nullptr) {
      return detail::make_leaf(std::move(values), std::move(shape));
    }
    detail::TapeState* tape = detail::recording_tape(op.name, inputs);
    if (tape == nullptr) return detail::make_leaf(std::move(values), std::move(shape));
    return detail::record_node<Fn>(*tape, detail::describe<Fn>(op), std::move(shape),
                                   std::move(values), inputs, where, std::forward<RuleFn>(rule));
  }
}
// The same with values to copy: a Values lvalue, or a std::vector<double> (custom ops written
// before Values existed keep compiling); tapegrad's own ops move their Values in.
template <class RuleFn>
Tensor record(const OpInfo& op, Shape shape, const Values& values, OpInputs inputs, RuleFn&& rule,
              std::source_location where = std::source_location::current()) {
  return record(op, std::move(shape), Values(values), inputs, std::forward<RuleFn>(rule), where);
}
template <class Vector, class RuleFn>
requires std::same_as<std::remove_cvref_t<Vector>, std::vector<double>> Tensor
record(const OpInfo& op, Shape shape, Vector&& values, OpInputs inputs, RuleFn&& rule,
       std::source_location where = std::source_location::current()) {
  return record(op, std::move(shape), Values(values.begin(), values.end()), inputs,
                std::forward<RuleFn>(rule), where);
}

}  // namespace tapegrad

// Prints every node, one line each: index, op, inputs (earlier nodes as #i, leaves as leaf#k in
// order of first use), result shape, a value summary and, once a backward has run on a tape that
// keeps gradients, the gradient summary. Meant for graphs of a few dozen nodes.
template <>
struct fmt::formatter<tapegrad::Tape> : fmt::formatter<std::string_view> {
  format_context::iterator format(const tapegrad::Tape& tape, format_context& ctx) const;
};

namespace tapegrad {
// A short description of a tensor's values: all of them when there are at most 6, else
// "mean .. min .. max ..". Used by tape printing, traced backward and graph pictures.
std::string summarize(const Tensor& tensor);
}  // namespace tapegrad
