// Differentiates sigmoid through the installed library and checks sigma'(0) = 1/4.
#include <cstdio>
#include <tapegrad/tapegrad.hpp>

int main() {
  tapegrad::Tensor x = tapegrad::scalar(0.0).requires_grad_();
  tapegrad::Tape tape;
  tapegrad::sigmoid(x).backward();
  const double slope = x.grad().item();
  std::printf("consumer: sigma'(0) = %.17g\n", slope);
  return slope == 0.25 ? 0 : 1;
}
