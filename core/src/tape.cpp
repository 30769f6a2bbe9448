#include "tapegrad/core/tape.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "recycler.hpp"
#include "tapegrad/core/error.hpp"

namespace tapegrad {

namespace {
// Stamps are unique across all tapes and threads, and increase on each thread: a thread takes a
// block of them at a time from the global counter (no atomic operation per tape or clear), and
// every block starts above every block handed out before. 0 is never a stamp (a leaf's pin mark
// starts at 0).
constexpr std::uint64_t stamp_block = std::uint64_t{1} << 16;
std::atomic<std::uint64_t> next_stamp_block{1};
thread_local constinit std::uint64_t next_stamp = 0;
thread_local constinit std::uint64_t stamp_block_end = 0;
// A new stamp above `above` (the stamps a reused tape state had: a state that moved to this
// thread from another must not see older-looking stamps than it had).
std::uint64_t new_stamp(std::uint64_t above = 0) {
  if (next_stamp == stamp_block_end || next_stamp <= above) [[unlikely]] {
    next_stamp = next_stamp_block.fetch_add(stamp_block, std::memory_order_relaxed);
    stamp_block_end = next_stamp + stamp_block;
  }
  return next_stamp++;
}
std::atomic<std::size_t> growth_warning_nodes{default_tape_growth_warning};
std::atomic<bool> growth_warned{false};
}  // namespace

namespace detail {
namespace {
// Tape states are never freed (results keep a pointer to theirs), only reused: one spare per
// thread (a tape per step takes and gives back the same one, with no lock), the rest in a pool.
// The pool outlives every thread_local and static destructor that may still give a state back
// (and keeps the states reachable for LeakSanitizer): it is never destroyed.
struct StatePool {
  std::mutex mutex;
  std::vector<TapeState*> states;
};
StatePool& state_pool() {
  static StatePool* pool = new StatePool();  // NOLINT: deliberately never deleted
  return *pool;
}

void give_to_pool(TapeState* state) noexcept {
  try {
    StatePool& pool = state_pool();
    const std::lock_guard lock(pool.mutex);
    pool.states.push_back(state);
  } catch (...) {
    // No room in the pool: the state is leaked, which is safe (results may still point to it).
  }
}

struct SpareState {
  TapeState* state = nullptr;
  SpareState() = default;
  SpareState(const SpareState&) = delete;
  SpareState& operator=(const SpareState&) = delete;
  ~SpareState() {
    if (state != nullptr) give_to_pool(state);
  }
};
thread_local SpareState spare_state;

TapeState* take_state() {
  if (TapeState* state = std::exchange(spare_state.state, nullptr)) return state;
  {
    StatePool& pool = state_pool();
    const std::lock_guard lock(pool.mutex);
    if (!pool.states.empty()) {
      TapeState* state = pool.states.back();
      pool.states.pop_back();
      return state;
    }
  }
  return new TapeState();  // NOLINT: deliberately never deleted
}

void give_state(TapeState* state) noexcept {
  if (spare_state.state == nullptr) {
    spare_state.state = state;
  } else {
    give_to_pool(state);
  }
}

void set_stamp(TapeState& state, std::uint64_t stamp) {
  std::atomic_ref<std::uint64_t>(state.stamp).store(stamp, std::memory_order_relaxed);
}
}  // namespace
}  // namespace detail

Tape::Tape()
    : state_(detail::take_state()), enclosing_(current_), thread_(std::this_thread::get_id()) {
  const std::uint64_t stamp = new_stamp(state_->current_stamp());
  state_->birth = stamp;
  detail::set_stamp(*state_, stamp);
  state_->thread = detail::this_thread_token();
  std::atomic_ref<bool>(state_->alive).store(true, std::memory_order_relaxed);
  state_->keep_gradients = false;
  if (enclosing_ != nullptr) enclosing_->enclosed_ = this;
  current_ = this;
  detail::recording_state = state_;
  detail::recording_head = state_;
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
    current_ = enclosing_;
    detail::recording_state = enclosing_ != nullptr ? enclosing_->state_ : nullptr;
    detail::recording_head = detail::recording_state;
  }
  if (enclosing_ != nullptr) enclosing_->enclosed_ = enclosed_;
  state_->clear_nodes();
  // A new stamp: every result of this tape now reads as stale; `alive` false says "destroyed".
  std::atomic_ref<bool>(state_->alive).store(false, std::memory_order_relaxed);
  detail::set_stamp(*state_, new_stamp(state_->current_stamp()));
  detail::give_state(state_);
}

void Tape::clear() {
  state_->clear_nodes();
  detail::set_stamp(*state_, new_stamp(state_->current_stamp()));
}

Node Tape::node(std::size_t index) const {
  if (index >= state_->size()) {
    throw ValueError(fmt::format("Tape::node: index {} is out of range for a tape of {} nodes",
                                 index, state_->size()));
  }
  return detail::node_view(*state_, index);
}

void set_tape_growth_warning(std::size_t nodes) {
  growth_warning_nodes.store(nodes, std::memory_order_relaxed);
  growth_warned.store(false);
}
std::size_t tape_growth_warning() {
  return growth_warning_nodes.load(std::memory_order_relaxed);
}

NoGradGuard::NoGradGuard() : previous_(detail::grad_enabled) {
  detail::grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  detail::grad_enabled = previous_;
}

EnableGradGuard::EnableGradGuard(bool enabled) : previous_(detail::grad_enabled) {
  detail::grad_enabled = enabled;
}
EnableGradGuard::~EnableGradGuard() {
  detail::grad_enabled = previous_;
}

AnomalyGuard::AnomalyGuard(bool enabled) : previous_(detail::anomaly_enabled) {
  detail::anomaly_enabled = enabled;
}
AnomalyGuard::~AnomalyGuard() {
  detail::anomaly_enabled = previous_;
}

namespace detail {

namespace {
// Chunks of the result lists, recycled per thread: a tape per step of up to 2048 nodes (or a tape
// and a nested one) allocates no chunk after the first step.
using ChunkRecycler = BlockRecycler<ResultList::chunk_size * sizeof(Tensor), 2>;

std::size_t tape_value_bytes(const ResultList& results) {
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const TensorImpl& impl = *results[i].impl_ptr();
    bytes += impl.block_bytes +
             (impl.flags & TensorImpl::inline_values_flag ? 0 : impl.numel() * sizeof(double));
  }
  return bytes;
}
}  // namespace

ResultList::~ResultList() {
  for (Tensor* chunk : chunks_) ChunkRecycler::give(chunk);
}

void ResultList::add_chunk(std::size_t sweeps) {
  if (size_ >= std::numeric_limits<std::uint32_t>::max() - chunk_size) {
    throw AutogradError(fmt::format(
        "Tape: {} nodes; a tape holds fewer than 2^32 (clear it, or make one Tape per step)",
        size_));
  }
  // Room first, so that push_back cannot throw and leak the chunk.
  if (chunks_.size() == chunks_.capacity())
    chunks_.reserve(std::max<std::size_t>(4, 2 * chunks_.size()));
  chunks_.push_back(static_cast<Tensor*>(ChunkRecycler::take()));
  cursor_ = chunks_.back();
  end_ = cursor_ + chunk_size;
  // The growth warning costs the record path nothing: it is checked here, once a chunk.
  const std::size_t limit = growth_warning_nodes.load(std::memory_order_relaxed);
  if (limit == 0 || size_ < limit || sweeps < 2) return;
  if (growth_warned.exchange(true)) return;
  const double megabytes = static_cast<double>(tape_value_bytes(*this)) / (1024.0 * 1024.0);
  fmt::print(stderr,
             "tapegrad: warning: one Tape holds {} nodes (about {:.0f} MB) and keeps growing after "
             "{} backward passes since it was last cleared. A Tape keeps every intermediate until "
             "it is cleared or destroyed, so a training loop inside one Tape grows without bound "
             "and slows down. Make one Tape per step (declare it inside the loop) or call "
             "tape.clear() at the end of each step. (Printed once; "
             "tapegrad::set_tape_growth_warning(0) turns it off.)\n",
             size_, megabytes, sweeps);
}

void ResultList::forget() noexcept {
  size_ = 0;
  while (chunks_.size() > 1) {
    ChunkRecycler::give(chunks_.back());
    chunks_.pop_back();
  }
  cursor_ = chunks_.empty() ? nullptr : chunks_.front();
  end_ = chunks_.empty() ? nullptr : cursor_ + chunk_size;
}

namespace {
// Drops the tape's hold on a result (bit 0 of its count): frees it if no handle is left.
void drop_hold(TensorImpl* impl) noexcept {
  std::atomic_ref<std::uint32_t> count(impl->count);
  if (count.load(std::memory_order_acquire) == 1) return destroy(impl);
  impl->n_inputs = 0;  // a result that outlives its node: its value stays, its inputs are gone
  if (count.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(impl);
}
}  // namespace

void TapeState::clear_nodes() noexcept {
  // Oldest first: the sweep that usually precedes a clear ends at the oldest nodes, so they are
  // the ones still in the cache. Holds, not handles, keep results alive, so the order is free.
  results.for_each([](TensorImpl* impl) {
    if (impl->flags & TensorImpl::rule_destructor_flag) [[unlikely]] {
      impl->op->rule.destroy(node_rule_state(impl));
      impl->flags &= ~TensorImpl::rule_destructor_flag;
    }
    drop_hold(impl);
  });
  results.forget();
  pinned.clear();
  kept.clear();
  sweeps = 0;
}

Node node_view(const TapeState& tape, std::size_t index) {
  const Tensor& result = tape.results[index];
  TensorImpl* impl = result.impl_ptr();
  const OpDescriptor& op = *impl->op;
  return Node{.op = op.name,
              .rule_text = op.rule_text,
              .where = node_where(impl),
              .inputs = {node_inputs(impl), impl->n_inputs},
              .result = result,
              .rule = {&op.rule, op.rule.size == 0 ? nullptr : node_rule_state(impl)},
              .grad = index < tape.kept.size() ? tape.kept[index] : Tensor()};
}

namespace {
struct OpKey {
  const RuleVTable* rule;
  const char* name;
  std::size_t name_size;
  const char* text;
  std::size_t text_size;
  bool operator==(const OpKey&) const = default;
};
struct OpKeyHash {
  std::size_t operator()(const OpKey& k) const noexcept {
    std::size_t h = std::hash<const void*>()(k.rule);
    for (const void* p : {static_cast<const void*>(k.name), static_cast<const void*>(k.text)})
      h = h * 1000003u ^ std::hash<const void*>()(p);
    return h ^ (k.name_size << 16) ^ k.text_size;
  }
};
// Never destroyed, as the descriptors in it (a tensor made during another static's destruction
// still names its op).
struct OpRegistry {
  std::mutex mutex;
  std::unordered_map<OpKey, const OpDescriptor*, OpKeyHash> ops;
};
OpRegistry& op_registry() {
  static OpRegistry* registry = new OpRegistry();  // NOLINT: deliberately never deleted
  return *registry;
}
}  // namespace

const OpDescriptor* intern_op(const OpInfo& op, const RuleVTable* rule) {
  const OpKey key{rule, op.name.data(), op.name.size(), op.rule_text.data(), op.rule_text.size()};
  OpRegistry& registry = op_registry();
  const std::lock_guard lock(registry.mutex);
  if (auto it = registry.ops.find(key); it != registry.ops.end()) return it->second;
  // Never freed: every tensor an op made names it, on any thread, for the program's life.
  auto* descriptor = new OpDescriptor{.rule = *rule,
                                      .name = std::string(op.name),
                                      .rule_text = std::string(op.rule_text),
                                      .name_key = key.name,
                                      .rule_key = key.text,
                                      .rule_type = rule};
  registry.ops.emplace(key, descriptor);
  return descriptor;
}

// Why a recorded input cannot join the current tape; always throws.
void reject_input(std::string_view op, std::size_t index, const TensorImpl& impl) {
  const TapeState& tape = static_cast<const TapeState&>(*impl.result.tape);
  const std::uint64_t stamp = tape.current_stamp();
  if (stamp == impl.result.stamp) {
    throw AutogradError(fmt::format(
        "{}: input {} ({}, made by '{}') was recorded on a different tape than the one now "
        "recording; a graph cannot span two tapes. Use .detach() to use it as a constant",
        op, index, impl.shape, impl.op->name));
  }
  throw AutogradError(fmt::format(
      "{}: input {} ({}, made by '{}') was recorded on a tape that has since been {}; its value is "
      "still there but it can no longer be differentiated. Use .detach() to use it as a constant",
      op, index, impl.shape, impl.op->name, stale_tape_fate(impl)));
}

std::string_view stale_tape_fate(const TensorImpl& impl) {
  const TapeState& tape = static_cast<const TapeState&>(*impl.result.tape);
  const bool alive = std::atomic_ref<const bool>(tape.alive).load(std::memory_order_relaxed);
  const std::uint64_t birth =
      std::atomic_ref<const std::uint64_t>(tape.birth).load(std::memory_order_relaxed);
  return alive && impl.result.stamp >= birth ? "cleared" : "destroyed";
}

void throw_too_many_inputs(const OpDescriptor* op, std::size_t n) {
  throw AutogradError(fmt::format("{}: {} inputs; a node takes at most 2^32 - 2", op->name, n));
}

void pin_leaf(TapeState& tape, TensorImpl* leaf, std::uint64_t stamp) {
  retain(leaf);
  tape.pinned.push_back(Tensor::adopt(leaf));  // on failure the handle is released again
  std::atomic_ref<std::uint64_t>(leaf->leaf.pinned_by).store(stamp, std::memory_order_relaxed);
}

void check_forward_anomaly(const OpInfo& op, const OpInputs& inputs, std::span<const double> values,
                           const Shape& shape, std::source_location where) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) continue;
    std::vector<std::string> shapes;
    inputs.for_each([&](std::size_t, const TensorImpl* input) {
      shapes.push_back(input != nullptr ? fmt::format("{}", input->shape) : "undefined");
    });
    throw AnomalyError(fmt::format(
        "{}: anomaly: the result holds {} at flat index {} (inputs {} -> result {}), called at "
        "{}:{}; look for log(0), x/0 or exp overflow on that line: clamp the input or use a "
        "stable fused form (log_softmax, cross_entropy_with_logits, bce_with_logits)",
        op.name, values[i], i, fmt::join(shapes, " vs "), shape, where.file_name(), where.line()));
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
    const tapegrad::Node node = tape.node(i);
    std::vector<std::string> inputs;
    for (const tapegrad::Tensor& input : node.inputs) {
      if (!input.defined()) {
        inputs.emplace_back("-");
      } else if (!input.is_leaf()) {
        inputs.push_back(fmt::format("#{}", input.impl().node));
      } else {
        auto found = std::find(leaves.begin(), leaves.end(), input.impl_ptr());
        const auto k = static_cast<std::size_t>(found - leaves.begin());
        if (found == leaves.end()) leaves.push_back(input.impl_ptr());
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
