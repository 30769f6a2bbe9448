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
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
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
// Rules are written with differentiable ops so that create_graph can record them.
using Rule = std::function<TensorList(const Tensor& grad, const Tensor& result,
                                      std::span<const Tensor> inputs)>;

// What an op tells the tape about itself: its name and its rule in words, as a student would
// write it ("dx = g * y * (1 - y)"), for traced backward and tape printing.
struct OpInfo {
  std::string_view name;
  std::string_view rule_text = {};
  OpInfo(const char* op_name) : name(op_name) {}  // NOLINT: a bare name is an OpInfo
  OpInfo(std::string_view op_name, std::string_view rule_in_words = {})
      : name(op_name), rule_text(rule_in_words) {}
};

struct Node {
  std::string_view op;
  std::string_view rule_text;
  std::source_location where;  // the user's line that called the op
  TensorList inputs;
  Tensor result;
  Rule rule;
  Tensor grad;  // dLoss/dresult after a backward, kept only when the tape keeps gradients
};

namespace detail {
// The nodes of one tape, in chunks of 256. Appending (a rule does, under create_graph) never
// moves the nodes already there; clear() destroys the nodes but keeps the chunks, so a training
// loop that clears its tape every step allocates no nodes after the first.
class NodeStore {
 public:
  NodeStore() = default;
  NodeStore(const NodeStore&) = delete;
  NodeStore& operator=(const NodeStore&) = delete;
  ~NodeStore();

  std::size_t size() const { return size_; }
  Node& operator[](std::size_t i) { return slot(i); }
  const Node& operator[](std::size_t i) const { return slot(i); }
  const Node& at(std::size_t i) const;
  // Builds the node in its slot (Node's aggregate initialisation from `fields`), with no
  // temporary Node to move from and destroy.
  template <class... Fields>
  void emplace_back(Fields&&... fields) {
    // The growth warning costs the record path nothing: it is checked in add_chunk, once a chunk.
    if (size_ == chunks_.size() * chunk_nodes) add_chunk();
    std::byte* chunk = chunks_[size_ / chunk_nodes];
    new (chunk + (size_ % chunk_nodes) * sizeof(Node)) Node{std::forward<Fields>(fields)...};
    ++size_;
  }
  void clear();
  // Counts a backward sweep over these nodes; clear() resets the count. A tape that has been
  // swept more than once and keeps growing is a training loop inside one Tape (see
  // set_tape_growth_warning).
  void note_sweep() { ++sweeps_; }
  std::size_t sweeps() const { return sweeps_; }

 private:
  static constexpr std::size_t chunk_nodes = 256;
  void add_chunk();  // a new chunk, and the growth warning's check
  Node& slot(std::size_t i) const {
    return std::launder(reinterpret_cast<Node*>(chunks_[i / chunk_nodes]))[i % chunk_nodes];
  }

  // Raw storage for chunk_nodes Nodes each, from a per-thread recycler: a fresh tape per step
  // reuses the chunks of the last one instead of allocating (and freeing) 47 KB every step.
  std::vector<std::byte*> chunks_;
  std::size_t size_ = 0;
  std::size_t sweeps_ = 0;
};

struct TapeState {
  NodeStore nodes;
  // Unique across all tapes and renewed by every clear(): a recorded tensor whose stamp equals
  // the recording tape's is on it and still valid, checked without touching reference counts.
  std::uint64_t stamp = 0;
  bool keep_gradients = false;
};
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
  std::size_t size() const { return state_->nodes.size(); }
  // Keep every node's gradient after backward (off by default: memory stays one value per node).
  // For printing the tape and for teaching; Node::grad holds them.
  void keep_gradients(bool keep = true) { state_->keep_gradients = keep; }
  const Node& node(std::size_t index) const { return state_->nodes.at(index); }

  // The innermost tape recording on this thread, or nullptr.
  static Tape* current();

  const std::shared_ptr<detail::TapeState>& state() const { return state_; }

 private:
  std::shared_ptr<detail::TapeState> state_;
  Tape* enclosing_;           // the tape below this one on its thread's stack, or nullptr
  Tape* enclosed_ = nullptr;  // the tape above it, or nullptr when this one is the innermost
  std::thread::id thread_;    // the thread whose stack this tape is on
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

bool is_grad_enabled();

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

bool is_anomaly_enabled();

namespace detail {
// True when an op with these inputs must be recorded: grad mode on, a tape recording, and some
// input requiring grad. Throws AutogradError naming `op` if a recorded input's tape was cleared
// or destroyed, or if it belongs to another tape.
bool should_record(std::string_view op, std::span<const Tensor> inputs);
// Appends a node whose result is `result` and marks `result` as recorded.
void push_node(const OpInfo& op, TensorList&& inputs, const Tensor& result, Rule&& rule,
               std::source_location where);
// Anomaly mode's forward check: throws AnomalyError if `result` holds a NaN or an infinity.
void check_forward_anomaly(const OpInfo& op, std::span<const Tensor> inputs, const Tensor& result,
                           std::source_location where);
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
template <class RuleFn>
Tensor record(const OpInfo& op, Shape shape, Values values, TensorList inputs, RuleFn&& rule,
              std::source_location where = std::source_location::current()) {
  Tensor result = Tensor::from_values(std::move(values), std::move(shape));
  if (is_anomaly_enabled()) detail::check_forward_anomaly(op, inputs, result, where);
  if (detail::should_record(op.name, inputs)) {
    detail::push_node(op, std::move(inputs), result, Rule(std::forward<RuleFn>(rule)), where);
  }
  return result;
}
// The same with the values in a std::vector<double> (copied into Values): custom ops written
// before Values existed keep compiling; tapegrad's own ops allocate Values and skip the copy.
template <class Vector, class RuleFn>
requires std::same_as<std::remove_cvref_t<Vector>, std::vector<double>> Tensor
record(const OpInfo& op, Shape shape, Vector&& values, TensorList inputs, RuleFn&& rule,
       std::source_location where = std::source_location::current()) {
  return record(op, std::move(shape), Values(values.begin(), values.end()), std::move(inputs),
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
