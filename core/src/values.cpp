// The value buffers' allocator (tensor.hpp, detail::take_value_buffer): small buffers from
// per-thread free lists by size class, large ones from a per-thread cache of freed buffers of the
// same size, everything else from the heap.
#include <bit>
#include <cstddef>
#include <new>
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

void* take_small(std::size_t bytes) {
  switch (class_bytes(bytes)) {
    case 8:
      return SmallClass<8>::take();
    case 16:
      return SmallClass<16>::take();
    case 32:
      return SmallClass<32>::take();
    case 64:
      return SmallClass<64>::take();
    case 128:
      return SmallClass<128>::take();
    default:
      return SmallClass<256>::take();
  }
}

void give_small(void* pointer, std::size_t bytes) noexcept {
  switch (class_bytes(bytes)) {
    case 8:
      SmallClass<8>::give(pointer);
      return;
    case 16:
      SmallClass<16>::give(pointer);
      return;
    case 32:
      SmallClass<32>::give(pointer);
      return;
    case 64:
      SmallClass<64>::give(pointer);
      return;
    case 128:
      SmallClass<128>::give(pointer);
      return;
    default:
      SmallClass<256>::give(pointer);
      return;
  }
}

class LargeCache {
 public:
  LargeCache() { buffers_.reserve(large_cache_buffers); }
  LargeCache(const LargeCache&) = delete;
  LargeCache& operator=(const LargeCache&) = delete;
  ~LargeCache() {
    alive_ = false;
    for (const Buffer& buffer : buffers_) ::operator delete(buffer.pointer, buffer.bytes);
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
      ::operator delete(pointer, bytes);
      return;
    }
    while (!buffers_.empty() &&
           (buffers_.size() == large_cache_buffers || held_ + bytes > large_cache_bytes)) {
      ::operator delete(buffers_.front().pointer, buffers_.front().bytes);
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

thread_local LargeCache large_cache;

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
  ::operator delete(pointer, bytes);
}

}  // namespace tapegrad::detail
