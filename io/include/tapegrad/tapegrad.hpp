#pragma once
// tapegrad: everything, in one include. Module headers (e.g. <tapegrad/ops/unary.hpp>) can be
// included on their own.
#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/gradcheck.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/shape.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/constants.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"
