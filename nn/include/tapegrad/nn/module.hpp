#pragma once
// Module: the base of every layer and network. A module owns named parameters (leaf tensors
// with requires_grad) and named sub-modules, and maps an input tensor to an output in forward().
//
//   class TwoLayer : public tapegrad::nn::Module {
//    public:
//     explicit TwoLayer(tapegrad::Generator& gen)
//         : hidden_(register_module("hidden", std::make_shared<Linear>(4, 8, gen))),
//           out_(register_module("out", std::make_shared<Linear>(8, 1, gen))) {}
//     Tensor forward(const Tensor& x) override { return (*out_)(relu((*hidden_)(x))); }
//    private:
//     std::shared_ptr<Linear> hidden_, out_;
//   };
//
// Parameter names follow PyTorch: a module's own parameters by their name ("weight"), a
// sub-module's prefixed by the sub-module's name ("hidden.weight", "0.bias", "layers.1.weight"),
// depth first in registration order. These names are what parameter files store.
//
// Modules are held by std::shared_ptr and are not copyable: two handles to one layer share its
// parameters, exactly like two Tensor handles share one tensor.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The computation: x -> y. Records on the current tape like any op.
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // A short description used in error messages and printing, e.g. "Linear(4 -> 3)".
  virtual std::string name() const { return "Module"; }

  // Every parameter of this module and its sub-modules, in registration order (depth first),
  // each tensor once: a module used twice (Sequential({lin, relu, lin})) or a tensor registered
  // under two names is listed under the first name met ("0.weight", not "2.weight"), as PyTorch's
  // named_parameters() does. parameter("2.weight") still finds it.
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  // The direct sub-modules, in registration order.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;

  // Buffers: state that is not a parameter (batch norm's running_mean, running_var,
  // num_batches_tracked). Named like parameters ("1.running_mean"), never requiring grad, never
  // given to an optimizer; saved and loaded with the parameters.
  std::vector<Tensor> buffers() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  // Everything a checkpoint holds, as PyTorch's state_dict(): each module's parameters, then its
  // buffers, then its sub-modules', depth first in registration order.
  std::vector<std::pair<std::string, Tensor>> named_state() const;

  // One parameter by its full name ("0.weight"); ValueError listing the known names otherwise.
  Tensor parameter(std::string_view full_name) const;
  // Replaces one parameter by another tensor of the same shape (ShapeError otherwise). Loading
  // weights normally writes into parameter(name).mutable_values() instead; replacing the handle
  // is for running the network on other tensors, as PyTorch's torch.func.functional_call does
  // (gradcheck of a whole network uses it). An optimizer made earlier keeps the old tensor.
  void set_parameter(std::string_view full_name, Tensor value);

  // Forgets every parameter's gradient (set to none, as PyTorch's zero_grad()).
  void zero_grad();

  // Training or evaluation mode, set on this module and every sub-module. Layers whose
  // behaviour differs between the two (dropout, batch norm) read is_training(); a new module
  // is in training mode, as in PyTorch.
  void train(bool mode = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

 protected:
  // Makes `value` a parameter named `name` (marks it requires_grad) and returns it. The name
  // must be non-empty, unique within this module, and without '.'; ValueError otherwise.
  Tensor register_parameter(std::string name, Tensor value);
  // Adds a sub-module under `name` (same rules as parameter names) and returns it.
  // Makes `value` (a leaf; requires_grad is turned off) a buffer named `name` (same rules as
  // parameter names) and returns it. The layer updates it in place through mutable_values().
  Tensor register_buffer(std::string name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }

 private:
  void add_child(std::string name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name, std::string_view what) const;
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  void collect_buffers(const std::string& prefix, bool with_parameters,
                       std::vector<std::pair<std::string, Tensor>>& out) const;
  Tensor* find_parameter(std::string_view full_name);

  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace tapegrad::nn
