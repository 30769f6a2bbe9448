// The value buffers' allocator (tensor.hpp, detail::take_value_buffer): small buffers from
// per-thread free lists by size class, large ones from a per-thread cache of freed buffers of the
// same size, everything else from the heap.
#include <bit>
#include <cstddef>
#include <new>
#include <type_traits>
#include <vector>

#include "recycler.hpp"
#include "tapegrad/core/tensor.hpp"

namespace tapegrad::detail {

namespace {

// Size classes 8, 16, ..., 256 bytes. 32768 blocks per class: at most 8 MiB kept in the largest
// class, what a tape of a few thousand scalar ops frees per step.
constexpr std::size_t small_bytes = 256;
constexpr std::size_t blocks_per_class = 32768;

// Freed buffers of at least 64 KiB are kept for the next allocation of exactly that size (a
// training step asks for the sizes the step before freed), up to 256 MiB and 64 buffers a thread;
// the oldest go back to the heap first. Below 64 KiB glibc serves from its heap without faults.
constexpr std::size_t large_bytes = 64 * 1024;
constexpr std::size_t large_cache_bytes = std::size_t{256} << 20;
constexpr std::size_t large_cache_buffers = 64;

template <std::size_t Size>
using SmallClass = BlockRecycler<Size, blocks_per_class>;

// Rounds up to the class: 1..8 -> 8, 9..16 -> 16, ..., 129..256 -> 256.
std::size_t class_bytes(std::size_t bytes) {
  return bytes <= 8 ? 8 : std::bit_ceil(bytes);
}

// Calls use(std::integral_constant<std::size_t, class size>{}) for the class of `bytes`.
template <class Use>
decltype(auto) by_class(std::size_t bytes, Use&& use) {
  switch (class_bytes(bytes)) {
    case 8:
      return use(std::integral_constant<std::size_t, 8>{});
    case 16:
      return use(std::integral_constant<std::size_t, 16>{});
    case 32:
      return use(std::integral_constant<std::size_t, 32>{});
    case 64:
      return use(std::integral_constant<std::size_t, 64>{});
    case 128:
      return use(std::integral_constant<std::size_t, 128>{});
    default:
      return use(std::integral_constant<std::size_t, 256>{});
  }
}

// (Unused under AddressSanitizer, where take_value_buffer bypasses the lists.)
[[maybe_unused]] void* take_small(std::size_t bytes) {
  return by_class(bytes, [](auto size) { return SmallClass<decltype(size)::value>::take(); });
}

[[maybe_unused]] void give_small(void* pointer, std::size_t bytes) noexcept {
  by_class(bytes, [pointer](auto size) { SmallClass<decltype(size)::value>::give(pointer); });
}

class LargeCache {
 public:
  LargeCache() { buffers_.reserve(large_cache_buffers); }
  LargeCache(const LargeCache&) = delete;
  LargeCache& operator=(const LargeCache&) = delete;
  ~LargeCache() {
    alive_ = false;
    for (const Buffer& buffer : buffers_) ::operator delete(buffer.pointer);
    buffers_.clear();
    held_ = 0;
  }

  void* take(std::size_t bytes) {
    // Newest first: the buffer freed last is the likeliest to be warm in the cache.
    for (std::size_t i = buffers_.size(); i-- > 0;) {
      if (buffers_[i].bytes != bytes) continue;
      void* pointer = buffers_[i].pointer;
      buffers_.erase(buffers_.begin() + static_cast<std::ptrdiff_t>(i));
      held_ -= bytes;
      return pointer;
    }
    return ::operator new(bytes);
  }

  void give(void* pointer, std::size_t bytes) noexcept {
    // `alive_` is read after the destructor on purpose, as in BlockRecycler: a buffer freed by
    // another thread_local's destructor goes to the heap.
    if (!alive_ || bytes > large_cache_bytes) {
      ::operator delete(pointer);
      return;
    }
    while (!buffers_.empty() &&
           (buffers_.size() == large_cache_buffers || held_ + bytes > large_cache_bytes)) {
      ::operator delete(buffers_.front().pointer);
      held_ -= buffers_.front().bytes;
      buffers_.erase(buffers_.begin());
    }
    buffers_.push_back({pointer, bytes});  // within the reserved capacity: cannot throw
    held_ += bytes;
  }

 private:
  struct Buffer {
    void* pointer;
    std::size_t bytes;
  };
  std::vector<Buffer> buffers_;
  std::size_t held_ = 0;
  bool alive_ = true;
};

[[maybe_unused]] thread_local LargeCache large_cache;

}  // namespace

void* take_value_buffer(std::size_t bytes) {
  if constexpr (recycle_blocks) {
    if (bytes <= small_bytes) return take_small(bytes);
    if (bytes >= large_bytes) return large_cache.take(bytes);
  }
  return ::operator new(bytes);
}

void give_value_buffer(void* pointer, std::size_t bytes) noexcept {
  if constexpr (recycle_blocks) {
    if (bytes <= small_bytes) return give_small(pointer, bytes);
    if (bytes >= large_bytes) return large_cache.give(pointer, bytes);
  }
  ::operator delete(pointer);
}

}  // namespace tapegrad::detail
