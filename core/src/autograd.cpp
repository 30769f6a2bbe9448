#include "tapegrad/core/autograd.hpp"

#include <atomic>
#include <cmath>
#include <optional>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {

struct SweepRequest {
  std::string_view caller;  // "backward" or "grad", for messages
  std::span<const Tensor> outputs;
  std::span<const Tensor> seeds;   // empty: every output is a scalar seeded with 1
  std::span<const Tensor> wanted;  // grad(): the tensors whose gradients are returned
  bool create_graph = false;
  bool accumulate_into_leaves = false;  // backward(): add to every leaf's grad()
  bool allow_unused = false;
  const TraceSink* trace = nullptr;
  const BackwardObserver* observe = nullptr;
};

// Anomaly mode's backward check: a rule that produced a NaN or an infinity is named with the line
// that called its op.
void check_backward_anomaly(const Node& node, std::size_t input, const Tensor& gradient) {
  const auto values = gradient.values();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) continue;
    throw AnomalyError(fmt::format(
        "{}: anomaly in backward: the gradient for input {} ({}) holds {} at flat index {} "
        "(result {}); the op was called at {}:{}; a rule dividing by a zero input or result "
        "(sqrt or log at 0) is the usual cause: keep the input off that point, e.g. sqrt(x + eps)",
        node.op, input, node.inputs[input].shape(), values[i], i, node.result.shape(),
        node.where.file_name(), node.where.line()));
  }
}

std::string describe_input(const Tensor& input) {
  if (input.is_leaf()) return fmt::format("leaf {}", input.shape());
  return fmt::format("node {} {} {}", input.impl().node, input.op(), input.shape());
}

// The tape the outputs were recorded on, checked to be alive and uncleared.
detail::TapeState* tape_of(const Tensor& output, std::string_view caller) {
  const detail::TensorImpl& impl = output.impl();
  detail::TapeState* tape = detail::live_tape(impl);
  if (tape == nullptr) {
    throw AutogradError(fmt::format(
        "{}: the output ({}, made by '{}') was recorded on a tape that has since been {}; run the "
        "forward pass again inside a live Tape scope",
        caller, impl.shape, output.op(), detail::stale_tape_fate(impl)));
  }
  return tape;
}

// Is a gradient about to be put into a leaf held by anything but the sweep's one handle (its
// leaf_grads entry)? Another leaf, the caller (a seed), a node's kept gradient, a user's handle
// to an intermediate all count; a tape's hold on a recorded result is not a handle.
bool held_elsewhere(const Tensor& g) {
  const std::uint32_t count =
      std::atomic_ref<std::uint32_t>(g.impl().count).load(std::memory_order_acquire);
  return (count >> 1) > 1;
}

// Under create_graph a leaf's new gradient is added to its existing one by a recorded op, so the
// existing one must be on the tape now recording (or a constant). Checked before any leaf is
// written.
void check_existing_gradient(const Tensor& leaf, const Tensor& existing, std::string_view caller) {
  if (existing.is_leaf() || !existing.requires_grad()) return;
  const detail::TensorImpl& impl = existing.impl();
  const detail::TapeState* tape = detail::live_tape(impl);
  if (tape != nullptr && Tape::current() != nullptr && Tape::current()->state() == tape) return;
  throw AutogradError(fmt::format(
      "{}: the existing grad() of a leaf ({}) was recorded by an earlier backward with "
      "create_graph on a tape that {}, so this backward cannot add to it; no leaf gradient was "
      "written. Call zero_grad() on the leaves before this backward (or "
      "set_grad(leaf.grad().detach()) to keep the value as a constant)",
      caller, leaf.shape(),
      tape == nullptr ? fmt::format("has since been {}", detail::stale_tape_fate(impl))
                      : std::string("is not the one recording now")));
}

// The first gradient to arrive is taken as it is (moved in when the caller passes a temporary: no
// reference-count round trip); later ones are added.
Tensor add_gradient(const Tensor& existing, Tensor incoming) {
  return existing.defined() ? detail::accumulate(existing, incoming) : std::move(incoming);
}

// A vector a sweep needs for its own length: the last one's buffer is kept per thread, so a
// training loop's backward allocates none after the first (a nested sweep makes its own).
template <class T>
class ScratchVector {
 public:
  ScratchVector() : items_(std::move(spare())) {}
  ScratchVector(const ScratchVector&) = delete;
  ScratchVector& operator=(const ScratchVector&) = delete;
  ~ScratchVector() {
    items_.clear();
    constexpr std::size_t keep_at_most = std::size_t{1} << 20;
    if (items_.capacity() <= keep_at_most && items_.capacity() > spare().capacity()) {
      spare() = std::move(items_);
    }
  }
  std::vector<T>& operator*() { return items_; }
  std::vector<T>* operator->() { return &items_; }

 private:
  static std::vector<T>& spare() {
    static thread_local std::vector<T> kept;
    return kept;
  }
  std::vector<T> items_;
};

// Marks a gradient that holds its only handle as private to the sweep (see private_gradients in
// sweep), and makes one shared again before it leaves the sweep.
void make_private(const Tensor& g) {
  detail::TensorImpl& impl = g.impl();
  if (std::atomic_ref<std::uint32_t>(impl.count).load(std::memory_order_relaxed) == 2) {
    impl.flags |= detail::TensorImpl::private_flag;
  }
}
void make_shared(const Tensor& g) {
  g.impl().flags &= ~detail::TensorImpl::private_flag;
}

// A node's rule applied to g (anomaly mode paused inside it, so a NaN is reported as the op's
// backward, not as an op inside its rule).
TensorList call_rule(const detail::OpDescriptor& op, detail::TensorImpl* impl, const Tensor& g,
                     const Tensor& result, std::span<const Tensor> inputs, bool anomaly) {
  void* state = op.rule.size == 0 ? nullptr : detail::node_rule_state(impl);
  if (anomaly) [[unlikely]] {
    const AnomalyGuard pause(false);
    return op.rule.invoke(state, g, result, inputs);
  }
  return op.rule.invoke(state, g, result, inputs);
}

// A rule's gradient for input k, in the result's shape, summed to the input's shape.
Tensor reduce_to_input(std::string_view caller, const detail::OpDescriptor& op, std::size_t k,
                       const Tensor& input_grad, const Tensor& input) {
  if (!broadcasts_to(input.shape(), input_grad.shape())) {
    throw AutogradError(fmt::format(
        "{}: the rule of '{}' returned a gradient for input {} that cannot be summed to the "
        "input's shape ({} vs {})",
        caller, op.name, k, input_grad.shape(), input.shape()));
  }
  return sum_to(input_grad, input.shape());
}

std::vector<Tensor> sweep(const SweepRequest& request) {
  const std::string_view caller = request.caller;
  if (!request.seeds.empty() && request.seeds.size() != request.outputs.size()) {
    throw AutogradError(fmt::format(
        "{}: {} seed gradients for {} outputs; pass one seed per output, each of its output's "
        "shape, or no seeds when every output is a scalar",
        caller, request.seeds.size(), request.outputs.size()));
  }

  // Seed every output; find the tape they share.
  detail::TapeState* tape = nullptr;
  TensorList seeds;  // seeds[k] for request.outputs[k]
  for (std::size_t k = 0; k < request.outputs.size(); ++k) {
    const Tensor& output = request.outputs[k];
    if (!output.requires_grad()) {
      throw AutogradError(fmt::format(
          "{}: output {} ({}) does not require grad: no input of the ops that made it requires "
          "grad, or it was computed with no Tape recording or inside a NoGradGuard. Mark the "
          "parameters with .requires_grad_() and run the forward pass inside a Tape scope",
          caller, k, output.shape()));
    }
    Tensor seed;
    if (request.seeds.empty() || !request.seeds[k].defined()) {
      if (output.numel() != 1) {
        throw AutogradError(fmt::format(
            "{}: output {} has shape {}; backward() needs a scalar output; pass a seed gradient "
            "of the same shape (e.g. ones_like(output)), or reduce it first (sum, mean)",
            caller, k, output.shape()));
      }
      seed = ones(output.shape());
    } else {
      seed = request.seeds[k];
      if (seed.shape() != output.shape()) {
        throw ShapeError(
            fmt::format("{}: the seed gradient must have the output's shape ({} vs {})", caller,
                        seed.shape(), output.shape()));
      }
    }
    if (!output.is_leaf()) {
      detail::TapeState* output_tape = tape_of(output, caller);
      if (tape != nullptr && tape != output_tape) {
        throw AutogradError(
            fmt::format("{}: output {} ({}) was recorded on a different tape than the outputs "
                        "before it; compute every output inside one Tape scope",
                        caller, k, output.shape()));
      }
      tape = output_tape;
    }
    seeds.push_back(std::move(seed));
  }

  // Rules run without recording unless the caller wants to differentiate the result again; then
  // they record on the outputs' own tape, which must be the one recording now.
  std::optional<NoGradGuard> no_grad;
  std::optional<EnableGradGuard> enable_grad;
  if (request.create_graph) {
    if (tape != nullptr && (Tape::current() == nullptr || Tape::current()->state() != tape)) {
      throw AutogradError(fmt::format(
          "{}: create_graph records the backward pass on the outputs' tape, so that tape must be "
          "the one recording on this thread (call it inside the same Tape scope)",
          caller));
    }
    enable_grad.emplace(true);
  } else {
    no_grad.emplace();
  }

  // Where each wanted tensor's gradient will come from.
  std::vector<Tensor> wanted_grads(request.wanted.size());
  std::vector<bool> wanted_reached(request.wanted.size(), false);
  std::unordered_map<const detail::TensorImpl*, std::vector<std::size_t>> wanted_leaf;
  std::unordered_map<std::size_t, std::vector<std::size_t>> wanted_node;
  for (std::size_t i = 0; i < request.wanted.size(); ++i) {
    const Tensor& w = request.wanted[i];
    if (w.is_leaf()) {
      wanted_leaf[w.impl_ptr()].push_back(i);
    } else {
      if (tape_of(w, caller) != tape) {
        throw AutogradError(
            fmt::format("{}: input {} ({}) was recorded on a different tape than the outputs",
                        caller, i, w.shape()));
      }
      wanted_node[w.impl().node].push_back(i);
    }
  }

  // Gradients reaching leaves, in first-reached order so accumulation order is deterministic.
  // A leaf is found by a linear search while there are few of them (no map to build per sweep).
  ScratchVector<std::pair<Tensor, Tensor>> leaf_grads;
  std::unordered_map<const detail::TensorImpl*, std::size_t> leaf_slot;  // past few_leaves
  constexpr std::size_t few_leaves = 16;
  auto reach_leaf = [&](const Tensor& leaf, Tensor g) {
    const detail::TensorImpl* key = leaf.impl_ptr();
    if (!request.accumulate_into_leaves && !wanted_leaf.contains(key)) return;
    std::size_t slot = leaf_grads->size();
    if (slot <= few_leaves) {
      for (std::size_t k = 0; k < leaf_grads->size(); ++k) {
        if ((*leaf_grads)[k].first.impl_ptr() == key) slot = k;
      }
    } else {
      if (leaf_slot.empty()) {
        for (std::size_t k = 0; k < leaf_grads->size(); ++k) {
          leaf_slot.emplace((*leaf_grads)[k].first.impl_ptr(), k);
        }
      }
      slot = leaf_slot.try_emplace(key, slot).first->second;
    }
    if (slot == leaf_grads->size()) {
      leaf_grads->emplace_back(leaf, std::move(g));
    } else {
      Tensor& total = (*leaf_grads)[slot].second;
      total = add_gradient(total, std::move(g));
    }
  };

  // Pending gradient of each node's result, indexed by node.
  ScratchVector<Tensor> pending;
  std::vector<Tensor>& node_grads = *pending;
  std::size_t top = 0;
  for (const Tensor& output : request.outputs) {
    if (output.is_leaf()) continue;
    top = std::max<std::size_t>(top, std::size_t{output.impl().node} + 1);
  }
  node_grads.resize(top);
  for (std::size_t k = 0; k < request.outputs.size(); ++k) {
    const Tensor& output = request.outputs[k];
    if (output.is_leaf()) {
      reach_leaf(output, seeds[k]);
    } else {
      Tensor& slot = node_grads[output.impl().node];
      slot = add_gradient(slot, seeds[k]);
    }
  }

  if (tape != nullptr) {
    ++tape->sweeps;
    if (tape->keep_gradients && tape->kept.size() < top) tape->kept.resize(top);
  }
  const bool anomaly = is_anomaly_enabled();
  // The uncommon work per node (kept gradients, a trace, an observer, wanted intermediates,
  // anomaly checks) sits behind one test, so the common sweep stays a short loop.
  const bool extras = anomaly || request.trace || request.observe || !wanted_node.empty() ||
                      (tape != nullptr && tape->keep_gradients);
  // Private gradients: a gradient a rule returns holding its only handle is the sweep's alone,
  // so its copies (add's rule hands g to both inputs) and releases need no atomic operation
  // (TensorImpl::private_flag). Only where no gradient can leave the sweep before it ends: not
  // with create_graph (they are tape results), nor with the extras (a trace, an observer, kept
  // gradients and wanted intermediates hand them out). Leaf gradients are made shared again
  // below, before they are written or returned. Rules must not keep their arguments.
  const bool private_gradients = !extras && !request.create_graph;
  // Only an observer needs the gradients sent (after the sum_to below); one buffer for the sweep.
  std::vector<Tensor> sent;
  // The sweep: newest node first. Every consumer of a node was recorded after it, so by the time
  // the sweep reaches node i its gradient is complete.
  for (std::size_t i = top; i-- > 0;) {
    if (!node_grads[i].defined()) continue;
    const Tensor g = std::move(node_grads[i]);
    const Tensor& result = tape->results[i];
    detail::TensorImpl* impl = result.impl_ptr();
    const detail::OpDescriptor& op = *impl->op;
    const std::span<const Tensor> inputs(detail::node_inputs(impl), impl->n_inputs);
    if (extras) [[unlikely]] {
      if (auto it = wanted_node.find(i); it != wanted_node.end()) {
        for (std::size_t w : it->second) {
          wanted_grads[w] = g;
          wanted_reached[w] = true;
        }
      }
      if (tape->keep_gradients) tape->kept[i] = g;
      if (request.trace) {
        const std::source_location& where = detail::node_where(impl);
        (*request.trace)(fmt::format("node {} {} {}  (called at {}:{})", i, op.name, result.shape(),
                                     where.file_name(), where.line()));
        (*request.trace)(
            fmt::format("  rule  {}", op.rule_text.empty() ? "(not described)" : op.rule_text));
        (*request.trace)(fmt::format("  g     {}", g));
      }
      if (request.observe) sent.assign(inputs.size(), Tensor());
    }
    TensorList input_grads = call_rule(op, impl, g, result, inputs, anomaly);
    if (input_grads.size() != inputs.size()) [[unlikely]] {
      throw AutogradError(fmt::format("{}: the rule of '{}' returned {} gradients for {} inputs",
                                      caller, op.name, input_grads.size(), inputs.size()));
    }
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      const Tensor& input = inputs[k];
      Tensor& input_grad = input_grads[k];
      if (!input.defined() || !input.requires_grad() || !input_grad.defined()) continue;
      if (private_gradients) make_private(input_grad);
      // The one place broadcast gradients are reduced back to their input's shape.
      if (input_grad.shape() != input.shape()) [[unlikely]] {
        input_grad = reduce_to_input(caller, op, k, input_grad, input);
      }
      if (extras) [[unlikely]] {
        if (anomaly) check_backward_anomaly(detail::node_view(*tape, i), k, input_grad);
        if (request.trace) {
          (*request.trace)(
              fmt::format("  -> input {} ({}): {}", k, describe_input(input), input_grad));
        }
        if (request.observe) sent[k] = input_grad;
      }
      if (input.is_leaf()) {
        reach_leaf(input, std::move(input_grad));
      } else if (Tensor& slot = node_grads[input.impl().node]; !slot.defined()) {
        slot.swap(input_grad);  // the first gradient to reach a node: no arithmetic, no count
      } else {
        slot = detail::accumulate(slot, input_grad);
      }
    }
    if (request.observe) [[unlikely]]
      (*request.observe)({i, detail::node_view(*tape, i), g, sent});
  }

  // Every leaf's new gradient is computed before any is written, so a backward that fails here (a
  // stale gradient, no memory) leaves every grad() as it was: all or nothing.
  // Each entry's gradient becomes the leaf's new grad() (or undefined: nothing to write).
  for (auto& [leaf, g] : *leaf_grads) {
    make_shared(g);
    if (auto it = wanted_leaf.find(leaf.impl_ptr()); it != wanted_leaf.end()) {
      for (std::size_t w : it->second) {
        wanted_grads[w] = g;
        wanted_reached[w] = true;
      }
    }
    if (!request.accumulate_into_leaves || !leaf.requires_grad()) {
      g = Tensor();
      continue;
    }
    const Tensor existing = leaf.grad();
    if (existing.defined()) {
      if (request.create_graph) check_existing_gradient(leaf, existing, caller);
      g = detail::accumulate(existing, g);  // a new tensor: its own
    } else if (held_elsewhere(g)) {
      // A rule may hand one gradient tensor to several inputs (add gives g to both), the seed may
      // be the caller's, and keep_gradients keeps it in a node: a leaf's grad() must be its own,
      // so an in-place edit of one (an optimizer's) cannot change another.
      g = detail::copy(g);
    }
  }
  for (auto& [leaf, total] : *leaf_grads) {
    if (total.defined()) leaf.set_grad(total);
  }

  for (std::size_t i = 0; i < request.wanted.size(); ++i) {
    if (wanted_reached[i]) continue;
    if (!request.allow_unused) {
      throw AutogradError(fmt::format(
          "{}: input {} ({}) was not used to compute the outputs, so it has no gradient; pass "
          "GradOptions{{.allow_unused = true}} to get zeros instead",
          caller, i, request.wanted[i].shape()));
    }
    wanted_grads[i] = zeros(request.wanted[i].shape());
  }
  return wanted_grads;
}

}  // namespace

void backward(const Tensor& output, const Tensor& seed, BackwardOptions options) {
  const Tensor outputs[] = {output};
  const Tensor seeds[] = {seed};
  sweep({.caller = "backward",
         .outputs = outputs,
         .seeds = seeds,
         .wanted = {},
         .create_graph = options.create_graph,
         .accumulate_into_leaves = true,
         .allow_unused = true,
         .trace = options.trace ? &options.trace : nullptr,
         .observe = options.observe ? &options.observe : nullptr});
}

std::vector<Tensor> grad(std::span<const Tensor> outputs, std::span<const Tensor> inputs,
                         std::span<const Tensor> seeds, GradOptions options) {
  return sweep({.caller = "grad",
                .outputs = outputs,
                .seeds = seeds,
                .wanted = inputs,
                .create_graph = options.create_graph,
                .accumulate_into_leaves = false,
                .allow_unused = options.allow_unused,
                .trace = options.trace ? &options.trace : nullptr,
                .observe = options.observe ? &options.observe : nullptr});
}

std::vector<Tensor> grad(const Tensor& output, std::span<const Tensor> inputs,
                         GradOptions options) {
  const Tensor outputs[] = {output};
  return grad(outputs, inputs, {}, options);
}

}  // namespace tapegrad
