#include "tapegrad/core/tape.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "recycler.hpp"
#include "tapegrad/core/error.hpp"

namespace tapegrad {

namespace {
thread_local Tape* current_tape = nullptr;
std::atomic<std::uint64_t> last_stamp{0};
std::uint64_t new_stamp() {
  return last_stamp.fetch_add(1, std::memory_order_relaxed) + 1;
}
thread_local bool grad_enabled = true;
std::atomic<std::size_t> growth_warning_nodes{default_tape_growth_warning};
std::atomic<bool> growth_warned{false};
thread_local bool anomaly_enabled = false;
}  // namespace

Tape::Tape()
    : state_(std::make_shared<detail::TapeState>()),
      enclosing_(current_tape),
      thread_(std::this_thread::get_id()) {
  state_->stamp = new_stamp();
  if (enclosing_ != nullptr) enclosing_->enclosed_ = this;
  current_tape = this;
}

Tape::~Tape() {
  if (thread_ != std::this_thread::get_id()) {
    // The tape is linked into its own thread's stack, which this thread cannot safely edit while
    // that thread may be recording; going on would leave it pointing at freed memory.
    std::fputs(
        "tapegrad: Tape destroyed on another thread than the one it records on. A Tape is a "
        "scope on one thread: it records that thread's ops and must be destroyed there (keep it "
        "in the thread's own scope; hand results to other threads, not tapes). Aborting.\n",
        stderr);
    std::abort();
  }
  // Unlink from the thread's stack wherever this tape is in it: scopes destroy the innermost
  // tape, heap-held tapes may go in any order.
  if (enclosed_ != nullptr) {
    enclosed_->enclosing_ = enclosing_;
  } else {
    current_tape = enclosing_;
  }
  if (enclosing_ != nullptr) enclosing_->enclosed_ = enclosed_;
}

void Tape::clear() {
  state_->nodes.clear();
  state_->stamp = new_stamp();
}

Tape* Tape::current() {
  return current_tape;
}

void set_tape_growth_warning(std::size_t nodes) {
  growth_warning_nodes.store(nodes, std::memory_order_relaxed);
  growth_warned.store(false);
}
std::size_t tape_growth_warning() {
  return growth_warning_nodes.load(std::memory_order_relaxed);
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

AnomalyGuard::AnomalyGuard(bool enabled) : previous_(anomaly_enabled) {
  anomaly_enabled = enabled;
}
AnomalyGuard::~AnomalyGuard() {
  anomaly_enabled = previous_;
}
bool is_anomaly_enabled() {
  return anomaly_enabled;
}

namespace detail {

namespace {
// Two chunks per thread: a tape per step of up to 512 nodes, or a tape and a nested one (the
// gradient checks), allocate no chunk after the first step.
using ChunkRecycler = BlockRecycler<256 * sizeof(Node), 2>;
}  // namespace

NodeStore::~NodeStore() {
  clear();
  static_assert(chunk_nodes == 256);
  for (std::byte* chunk : chunks_) ChunkRecycler::give(chunk);
}

const Node& NodeStore::at(std::size_t i) const {
  if (i >= size_) {
    throw ValueError(
        fmt::format("Tape::node: index {} is out of range for a tape of {} nodes", i, size_));
  }
  return slot(i);
}

void NodeStore::add_chunk() {
  // Room first, so that push_back cannot throw and leak the chunk.
  if (chunks_.size() == chunks_.capacity())
    chunks_.reserve(std::max<std::size_t>(4, 2 * chunks_.size()));
  chunks_.push_back(static_cast<std::byte*>(ChunkRecycler::take()));
  const std::size_t limit = growth_warning_nodes.load(std::memory_order_relaxed);
  if (limit == 0 || size_ < limit || sweeps_ < 2) return;
  if (growth_warned.exchange(true)) return;
  std::size_t value_bytes = 0;
  for (std::size_t i = 0; i < size_; ++i) {
    const Tensor& result = slot(i).result;
    if (result.defined()) value_bytes += result.numel() * sizeof(double);
  }
  const double megabytes =
      static_cast<double>(value_bytes + size_ * sizeof(Node)) / (1024.0 * 1024.0);
  fmt::print(stderr,
             "tapegrad: warning: one Tape holds {} nodes (about {:.0f} MB) and keeps growing after "
             "{} backward passes since it was last cleared. A Tape keeps every intermediate until "
             "it is cleared or destroyed, so a training loop inside one Tape grows without bound "
             "and slows down. Make one Tape per step (declare it inside the loop) or call "
             "tape.clear() at the end of each step. (Printed once; "
             "tapegrad::set_tape_growth_warning(0) turns it off.)\n",
             size_, megabytes, sweeps_);
}

void NodeStore::clear() {
  // Newest first, the order the nodes were built in reverse.
  while (size_ > 0) {
    --size_;
    slot(size_).~Node();
  }
  sweeps_ = 0;
}

namespace {
// Why a recorded input cannot join the current tape; always throws.
[[noreturn]] void reject_input(std::string_view op, std::size_t index, const TensorImpl& impl) {
  const auto tape = impl.tape.lock();
  if (tape && tape != current_tape->state() && tape->stamp == impl.stamp) {
    throw AutogradError(fmt::format(
        "{}: input {} ({}, made by '{}') was recorded on a different tape than the one now "
        "recording; a graph cannot span two tapes. Use .detach() to use it as a constant",
        op, index, impl.shape, impl.op));
  }
  throw AutogradError(fmt::format(
      "{}: input {} ({}, made by '{}') was recorded on a tape that has since been {}; its value is "
      "still there but it can no longer be differentiated. Use .detach() to use it as a constant",
      op, index, impl.shape, impl.op, tape ? "cleared" : "destroyed"));
}
}  // namespace

bool should_record(std::string_view op, std::span<const Tensor> inputs) {
  if (!grad_enabled || current_tape == nullptr) return false;
  const std::uint64_t stamp = current_tape->state()->stamp;
  bool any_requires_grad = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad()) continue;
    any_requires_grad = true;
    const TensorImpl& impl = input.impl();
    if (!input.is_leaf() && impl.stamp != stamp) reject_input(op, i, impl);
  }
  return any_requires_grad;
}

void push_node(const OpInfo& op, TensorList&& inputs, const Tensor& result, Rule&& rule,
               std::source_location where) {
  TapeState& state = *current_tape->state();
  TensorImpl& impl = result.impl();
  impl.requires_grad = true;
  impl.tape = current_tape->state();
  impl.stamp = state.stamp;
  impl.node = state.nodes.size();
  impl.op = op.name;
  state.nodes.emplace_back(op.name, op.rule_text, where, std::move(inputs), result, std::move(rule),
                           Tensor());
}

void check_forward_anomaly(const OpInfo& op, std::span<const Tensor> inputs, const Tensor& result,
                           std::source_location where) {
  const auto values = result.values();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) continue;
    std::vector<std::string> shapes;
    for (const Tensor& input : inputs) {
      shapes.push_back(input.defined() ? fmt::format("{}", input.shape()) : "undefined");
    }
    throw AnomalyError(fmt::format(
        "{}: anomaly: the result holds {} at flat index {} (inputs {} -> result {}), called at "
        "{}:{}; look for log(0), x/0 or exp overflow on that line: clamp the input or use a "
        "stable fused form (log_softmax, cross_entropy_with_logits, bce_with_logits)",
        op.name, values[i], i, fmt::join(shapes, " vs "), result.shape(), where.file_name(),
        where.line()));
  }
}

}  // namespace detail

}  // namespace tapegrad

namespace tapegrad {

std::string summarize(const Tensor& tensor) {
  if (!tensor.defined()) return "-";
  const auto values = tensor.values();
  if (values.size() <= 6) return fmt::format("[{:.6g}]", fmt::join(values, ", "));
  double total = 0.0, low = values[0], high = values[0];
  for (double v : values) {
    total += v;
    low = std::min(low, v);
    high = std::max(high, v);
  }
  return fmt::format("mean {:.4g} min {:.4g} max {:.4g}",
                     total / static_cast<double>(values.size()), low, high);
}

}  // namespace tapegrad

fmt::format_context::iterator fmt::formatter<tapegrad::Tape>::format(const tapegrad::Tape& tape,
                                                                     format_context& ctx) const {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, "Tape with {} node{}\n", tape.size(), tape.size() == 1 ? "" : "s");
  std::vector<const tapegrad::detail::TensorImpl*> leaves;  // leaf#k is leaves[k]
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const tapegrad::Node& node = tape.node(i);
    std::vector<std::string> inputs;
    for (const tapegrad::Tensor& input : node.inputs) {
      if (!input.defined()) {
        inputs.emplace_back("-");
      } else if (!input.is_leaf()) {
        inputs.push_back(fmt::format("#{}", input.impl().node));
      } else {
        auto found = std::find(leaves.begin(), leaves.end(), input.impl_ptr().get());
        const auto k = static_cast<std::size_t>(found - leaves.begin());
        if (found == leaves.end()) leaves.push_back(input.impl_ptr().get());
        inputs.push_back(fmt::format("leaf#{}{}", k, input.requires_grad() ? "" : "(const)"));
      }
    }
    fmt::format_to(it, "  #{:<3} {:<26} ({}) -> {}  value {}", i, node.op, fmt::join(inputs, ", "),
                   node.result.shape(), tapegrad::summarize(node.result));
    if (node.grad.defined()) fmt::format_to(it, "  grad {}", tapegrad::summarize(node.grad));
    fmt::format_to(it, "\n");
  }
  return fmt::formatter<std::string_view>::format(std::string_view(out.data(), out.size()), ctx);
}
