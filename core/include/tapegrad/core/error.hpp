#pragma once
// Every error tapegrad throws derives from tapegrad::Error, so `catch (const tapegrad::Error&)`
// catches all of them. Messages are shaped "<op>: <what is wrong> (<lhs shape> vs <rhs shape>)",
// followed by a hint where a common mistake is likely.
#include <stdexcept>
#include <string>

namespace tapegrad {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shapes that do not broadcast, do not multiply, or do not match what an op needs.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// An axis outside [-rank, rank).
class AxisError : public Error {
 public:
  using Error::Error;
};

// A value an op cannot accept (a class index out of range, a negative learning rate, ...).
class ValueError : public Error {
 public:
  using Error::Error;
};

// Misuse of the tape and the backward sweep: non-scalar backward without a seed, a tensor from a
// cleared or destroyed tape, the gradient of a non-leaf, ...
class AutogradError : public Error {
 public:
  using Error::Error;
};

// Memory for a tensor could not be allocated: the message names the op, the shape and the bytes
// asked for (what std::bad_alloc does not say).
class AllocationError : public Error {
 public:
  using Error::Error;
};

// Anomaly mode found a NaN or an infinity in an op's value or gradient.
class AnomalyError : public Error {
 public:
  using Error::Error;
};

}  // namespace tapegrad
