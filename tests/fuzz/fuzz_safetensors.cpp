// libFuzzer target for the safetensors reader and load_into (read_safetensors_bytes and
// load_into_bytes, the code behind read_safetensors and load_into).
//
// A FormatError or another tapegrad::Error is the expected outcome for bad input; anything else
// (another exception type, a crash, a sanitizer report, a huge allocation) is a bug. Checked
// besides: what read returns is consistent (sorted names, values filling each shape), load_into
// agrees with read on success, and a failed load_into leaves every parameter untouched.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/safetensors.hpp"

namespace {

using tapegrad::io::NamedTensors;
using tapegrad::io::SafetensorsFile;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
  std::abort();
}

constexpr double kSentinel = -12345.5;

// A fixed small "model": the names and shapes the seed corpus uses.
NamedTensors parameters() {
  return {{"b", tapegrad::full({3}, kSentinel)},
          {"w", tapegrad::full({2, 3}, kSentinel)},
          {"s", tapegrad::full({}, kSentinel)}};
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);

  std::optional<SafetensorsFile> file;
  try {
    file = tapegrad::io::read_safetensors_bytes(bytes, "fuzz.safetensors");
  } catch (const tapegrad::Error&) {
  }
  if (file) {
    for (std::size_t i = 0; i < file->tensors.size(); ++i) {
      const auto& [name, tensor] = file->tensors[i];
      if (i > 0 && !(file->tensors[i - 1].first < name)) die("names are not sorted and unique");
      if (tensor.values().size() != tensor.shape().numel()) die("values do not fill the shape");
      if (tensor.requires_grad()) die("a loaded tensor requires grad");
    }
  }

  NamedTensors params = parameters();
  bool loaded = false;
  try {
    tapegrad::io::load_into_bytes(bytes, "fuzz.safetensors", params);
    loaded = true;
  } catch (const tapegrad::Error&) {
  }
  if (loaded && !file) die("load_into accepted a file read_safetensors rejects");
  for (const auto& [name, parameter] : params) {
    const auto values = parameter.values();
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (loaded) {
        if (!same_bits(values[i], file->at(name).values()[i])) die("loaded values differ");
      } else if (!same_bits(values[i], kSentinel)) {
        die("a failed load_into changed a parameter");
      }
    }
  }
  return 0;
}
