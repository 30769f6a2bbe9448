#pragma once
// The tape: a Wengert list of the ops run while it records. Creation order is a topological
// order, so backward is one sweep from the last node to the first: no recursion, no graph search.
//
//   {
//     tapegrad::Tape tape;            // records on this thread until it goes out of scope
//     auto loss = f(w);               // every op on a tensor that requires grad adds a node
//     loss.backward();                // sweeps the nodes in reverse, fills w.grad()
//   }                                 // the tape and every intermediate are freed here
//
// Tapes nest: the innermost live one records. A tensor computed on a tape keeps its value after
// the tape is cleared or destroyed, but differentiating through it is then an AutogradError.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// A derivative rule, in PyTorch's derivatives.yaml vocabulary: given `grad` (dLoss/dresult, in
// the result's shape), the op's `result` and its `inputs`, return dLoss/dinput for each input
// (an undefined Tensor for an input that gets none). A rule may return a gradient in the
// result's shape for a broadcast input; the engine sums it down to the input's shape (sum_to).
// Rules are written with differentiable ops so that create_graph can record them.
using Rule = std::function<std::vector<Tensor>(const Tensor& grad, const Tensor& result,
                                               std::span<const Tensor> inputs)>;

struct Node {
  std::string_view op;
  std::vector<Tensor> inputs;
  Tensor result;
  Rule rule;
};

namespace detail {
struct TapeState {
  std::vector<std::unique_ptr<Node>> nodes;  // unique_ptr: a rule may append while we hold a Node&
  std::uint64_t generation = 0;
};
}  // namespace detail

class Tape {
 public:
  Tape();  // becomes this thread's recording tape until destroyed
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // Drops every node (and the intermediates they hold). Tensors computed so far keep their values
  // but can no longer be differentiated. Training loops clear once per step.
  void clear();
  std::size_t size() const { return state_->nodes.size(); }
  const Node& node(std::size_t index) const { return *state_->nodes.at(index); }

  // The innermost tape recording on this thread, or nullptr.
  static Tape* current();

  const std::shared_ptr<detail::TapeState>& state() const { return state_; }

 private:
  std::shared_ptr<detail::TapeState> state_;
  Tape* enclosing_;
};

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

namespace detail {
// True when an op with these inputs must be recorded: grad mode on, a tape recording, and some
// input requiring grad. Throws AutogradError naming `op` if a recorded input's tape was cleared
// or destroyed, or if it belongs to another tape.
bool should_record(std::string_view op, std::span<const Tensor> inputs);
// Appends a node whose result is `result` and marks `result` as recorded.
void push_node(std::string_view op, std::vector<Tensor> inputs, const Tensor& result, Rule rule);
}  // namespace detail

// Builds an op's output tensor and, when it must be recorded, its tape node. Every op ends here:
//   return record("exp", x.shape(), std::move(values), {x},
//                 [](const Tensor& g, const Tensor& y, auto) { return {g * y}; });
template <class RuleFn>
Tensor record(std::string_view op, Shape shape, std::vector<double> values,
              std::vector<Tensor> inputs, RuleFn&& rule) {
  Tensor result = Tensor::from_values(std::move(values), std::move(shape));
  if (detail::should_record(op, inputs)) {
    detail::push_node(op, std::move(inputs), result, Rule(std::forward<RuleFn>(rule)));
  }
  return result;
}

}  // namespace tapegrad
