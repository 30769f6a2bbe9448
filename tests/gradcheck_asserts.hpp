#pragma once
// GoogleTest assertions over tapegrad::gradcheck and gradgradcheck, shared by the op suites.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tapegrad::test {

// gradcheck passes and compared at least one Jacobian entry.
inline ::testing::AssertionResult GradcheckPasses(const Function& f,
                                                  const std::vector<Tensor>& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  if (!r.passed) return ::testing::AssertionFailure() << r.report;
  if (r.elements_checked == 0) return ::testing::AssertionFailure() << "nothing was checked";
  return ::testing::AssertionSuccess();
}

// gradgradcheck of f and of square(f): for ops linear in their differentiable inputs, only with
// something curved after them must their rules carry input-dependent gradients.
inline ::testing::AssertionResult GradgradPasses(const Function& f,
                                                 const std::vector<Tensor>& inputs,
                                                 std::uint64_t seed = 0) {
  const GradcheckResult plain = gradgradcheck(f, inputs, {.seed = seed});
  if (!plain.passed) return ::testing::AssertionFailure() << "f: " << plain.report;
  const Function squared = [&f](const std::vector<Tensor>& x) { return square(f(x)); };
  const GradcheckResult curved = gradgradcheck(squared, inputs, {.seed = seed + 1});
  if (!curved.passed) return ::testing::AssertionFailure() << "square(f): " << curved.report;
  if (plain.elements_checked == 0 || curved.elements_checked == 0) {
    return ::testing::AssertionFailure() << "nothing was checked";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace tapegrad::test
