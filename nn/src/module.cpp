#include "tapegrad/nn/module.hpp"

#include <unordered_set>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"

namespace tapegrad::nn {

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, parameter] : named_parameters()) out.push_back(parameter);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> all;
  collect("", all);
  // A module used twice (Sequential({lin, lin})) or a tensor registered under two names is one
  // parameter: listed once, under the first name met, as PyTorch's remove_duplicate=True, so an
  // optimizer updates it once per step and a file stores it once.
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(all.size());
  std::unordered_set<const detail::TensorImpl*> seen;
  for (auto& entry : all) {
    if (seen.insert(entry.second.impl_ptr()).second) out.push_back(std::move(entry));
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

void Module::collect(const std::string& prefix,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, parameter] : parameters_) out.emplace_back(prefix + name, parameter);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<Tensor> Module::buffers() const {
  std::vector<Tensor> out;
  for (auto& [name, buffer] : named_buffers()) out.push_back(buffer);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_buffers("", false, out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_buffers("", true, out);
  return out;
}

void Module::collect_buffers(const std::string& prefix, bool with_parameters,
                             std::vector<std::pair<std::string, Tensor>>& out) const {
  if (with_parameters) {
    for (const auto& [name, parameter] : parameters_) out.emplace_back(prefix + name, parameter);
  }
  for (const auto& [name, buffer] : buffers_) out.emplace_back(prefix + name, buffer);
  for (const auto& [name, child] : children_) {
    child->collect_buffers(prefix + name + ".", with_parameters, out);
  }
}

Tensor* Module::find_parameter(std::string_view full_name) {
  const std::size_t dot = full_name.find('.');
  if (dot == std::string_view::npos) {
    for (auto& [name, parameter] : parameters_) {
      if (name == full_name) return &parameter;
    }
    return nullptr;
  }
  const std::string_view child_name = full_name.substr(0, dot);
  for (auto& [name, child] : children_) {
    if (name == child_name) return child->find_parameter(full_name.substr(dot + 1));
  }
  return nullptr;
}

namespace {
[[noreturn]] void throw_unknown_parameter(std::string_view op, const Module& module,
                                          std::string_view full_name) {
  std::vector<std::string> names;
  for (auto& [name, parameter] : module.named_parameters()) names.push_back(name);
  throw ValueError(fmt::format("{}: {} has no parameter '{}'; its parameters are [{}]", op,
                               module.name(), full_name, fmt::join(names, ", ")));
}
}  // namespace

Tensor Module::parameter(std::string_view full_name) const {
  // find_parameter only walks; the const_cast lets one search serve both accessors.
  const Tensor* found = const_cast<Module*>(this)->find_parameter(full_name);
  if (found == nullptr) throw_unknown_parameter("parameter", *this, full_name);
  return *found;
}

void Module::set_parameter(std::string_view full_name, Tensor value) {
  Tensor* found = find_parameter(full_name);
  if (found == nullptr) throw_unknown_parameter("set_parameter", *this, full_name);
  if (!value.defined() || value.shape() != found->shape()) {
    throw ShapeError(fmt::format(
        "set_parameter: the new value for '{}' must have the parameter's shape ({} vs {})",
        full_name, value.defined() ? fmt::format("{}", value.shape()) : "undefined",
        found->shape()));
  }
  *found = std::move(value);
}

void Module::zero_grad() {
  for (auto& [name, parameter] : named_parameters()) parameter.zero_grad();
}

void Module::train(bool mode) {
  training_ = mode;
  for (auto& [name, child] : children_) child->train(mode);
}

void Module::check_new_name(const std::string& name, std::string_view what) const {
  if (name.empty() || name.find('.') != std::string::npos) {
    throw ValueError(fmt::format(
        "{}: {} name '{}' must be non-empty and contain no '.' ('.' joins the names of nested "
        "modules)",
        this->name(), what, name));
  }
  for (const auto& [existing, parameter] : parameters_) {
    if (existing == name) {
      throw ValueError(fmt::format("{}: the name '{}' is already a parameter", this->name(), name));
    }
  }
  for (const auto& [existing, buffer] : buffers_) {
    if (existing == name) {
      throw ValueError(fmt::format("{}: the name '{}' is already a buffer", this->name(), name));
    }
  }
  for (const auto& [existing, child] : children_) {
    if (existing == name) {
      throw ValueError(
          fmt::format("{}: the name '{}' is already a sub-module", this->name(), name));
    }
  }
}

Tensor Module::register_parameter(std::string name, Tensor value) {
  check_new_name(name, "parameter");
  if (!value.defined() || !value.is_leaf()) {
    throw ValueError(fmt::format(
        "{}: parameter '{}' must be a leaf tensor (made by a factory or detach()), not {}",
        this->name(), name,
        value.defined() ? fmt::format("the result of '{}'", value.op())
                        : std::string("an undefined tensor")));
  }
  value.requires_grad_();
  parameters_.emplace_back(std::move(name), value);
  return value;
}

Tensor Module::register_buffer(std::string name, Tensor value) {
  check_new_name(name, "buffer");
  if (!value.defined() || !value.is_leaf()) {
    throw ValueError(
        fmt::format("{}: buffer '{}' must be a defined leaf tensor", this->name(), name));
  }
  value.requires_grad_(false);
  buffers_.emplace_back(std::move(name), value);
  return value;
}

void Module::add_child(std::string name, std::shared_ptr<Module> module) {
  check_new_name(name, "sub-module");
  if (module == nullptr) {
    throw ValueError(fmt::format("{}: sub-module '{}' is null", this->name(), name));
  }
  children_.emplace_back(std::move(name), std::move(module));
}

}  // namespace tapegrad::nn
