#pragma once
// The one error type of io/: a file that cannot be read or written, or whose contents are not
// what its format promises. Messages start with the function and the file path, then say what
// is wrong: "read_idx: data/x.idx: payload is truncated: expected 784 bytes, got 100".
#include <string>

#include "tapegrad/core/error.hpp"

namespace tapegrad::io {

// Thrown for malformed files (bad magic, lying sizes, invalid JSON, mismatched tensors) and for
// files the OS will not give us (missing, unreadable, unwritable directory, disk full): either
// way the caller's remedy is about the file. Derives from tapegrad::Error.
class FormatError : public tapegrad::Error {
 public:
  using tapegrad::Error::Error;
};

}  // namespace tapegrad::io
