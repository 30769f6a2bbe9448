#include "tapegrad/core/tape.hpp"

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"

namespace tapegrad {

namespace {
thread_local Tape* current_tape = nullptr;
thread_local bool grad_enabled = true;
}  // namespace

Tape::Tape() : state_(std::make_shared<detail::TapeState>()), enclosing_(current_tape) {
  current_tape = this;
}

Tape::~Tape() {
  // Scopes nest, so the tape being destroyed is the innermost one.
  current_tape = enclosing_;
}

void Tape::clear() {
  state_->nodes.clear();
  ++state_->generation;
}

Tape* Tape::current() {
  return current_tape;
}

NoGradGuard::NoGradGuard() : previous_(grad_enabled) {
  grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  grad_enabled = previous_;
}

EnableGradGuard::EnableGradGuard(bool enabled) : previous_(grad_enabled) {
  grad_enabled = enabled;
}
EnableGradGuard::~EnableGradGuard() {
  grad_enabled = previous_;
}

bool is_grad_enabled() {
  return grad_enabled;
}

namespace detail {

bool should_record(std::string_view op, std::span<const Tensor> inputs) {
  if (!grad_enabled || current_tape == nullptr) return false;
  bool any_requires_grad = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad()) continue;
    any_requires_grad = true;
    if (input.is_leaf()) continue;
    const TensorImpl& impl = input.impl();
    const auto tape = impl.tape.lock();
    if (!tape || tape->generation != impl.generation) {
      throw AutogradError(fmt::format(
          "{}: input {} ({}, made by '{}') was recorded on a tape that has since been {}; its "
          "value is still there but it can no longer be differentiated. Use .detach() to use it "
          "as a constant",
          op, i, impl.shape, impl.op, tape ? "cleared" : "destroyed"));
    }
    if (tape != current_tape->state()) {
      throw AutogradError(fmt::format(
          "{}: input {} ({}, made by '{}') was recorded on a different tape than the one now "
          "recording; a graph cannot span two tapes. Use .detach() to use it as a constant",
          op, i, impl.shape, impl.op));
    }
  }
  return any_requires_grad;
}

void push_node(std::string_view op, std::vector<Tensor> inputs, const Tensor& result, Rule rule) {
  TapeState& state = *current_tape->state();
  TensorImpl& impl = result.impl();
  impl.requires_grad = true;
  impl.tape = current_tape->state();
  impl.generation = state.generation;
  impl.node = state.nodes.size();
  impl.op = op;
  state.nodes.push_back(
      std::make_unique<Node>(Node{op, std::move(inputs), result, std::move(rule)}));
}

}  // namespace detail

}  // namespace tapegrad
