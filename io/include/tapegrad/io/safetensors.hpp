#pragma once
// Named tensors in the safetensors format (Hugging Face), the parameter-file format of tapegrad.
//
// Layout:
//   8 bytes     N, the header length, little-endian uint64
//   N bytes     a UTF-8 JSON object: for each tensor
//                 "<name>": {"dtype": "F64", "shape": [2, 3], "data_offsets": [begin, end]}
//               with byte offsets relative to the start of the buffer, plus an optional
//               "__metadata__": {"<key>": "<value>", ...} of strings
//   the buffer  every tensor's elements, row-major, little-endian, packed back to back
// The writer sorts names, packs tensors in name order, and pads the header with spaces so the
// buffer starts at a multiple of 8 bytes (as the reference writer does).
//
// tapegrad writes F64 (its one scalar type) and reads F64 and F32 (widened to double); any other
// dtype is a FormatError naming the tensor. Reading validates the whole file before returning:
// header length within the file (and at most 100 MB, the reference reader's limit), valid JSON,
// known dtypes, shapes whose element count times the dtype size equals the tensor's byte range,
// offsets inside the buffer, and ranges that neither overlap nor leave gaps and cover the buffer
// exactly. Allocation is bounded by the file's real size, never by what the header claims.
// A file cut short says "truncated"; a PyTorch .pt/.pth file (a zip archive, or a legacy
// pickle) is named as such, with how to convert it.
//
// A whole model, one call each way (the names of safetensors.torch.save_model / load_model):
//   tapegrad::io::save_model(*model, "model.safetensors", {{"epoch", "3"}});
//   auto metadata = tapegrad::io::load_model(*model, "model.safetensors");
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/error.hpp"

namespace tapegrad::nn {
class Module;
}  // namespace tapegrad::nn

namespace tapegrad::io {

// The type nn::Module::named_parameters() returns.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// A whole safetensors file, read into memory.
struct SafetensorsFile {
  NamedTensors tensors;                         // sorted by name; leaves, requires_grad false
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent

  // The tensor called `name`; ValueError listing the names present when there is none.
  const Tensor& at(std::string_view name) const;
  // The tensor called `name`, or nullptr.
  const Tensor* find(std::string_view name) const;
};

// Writes `named` (as F64) and `metadata` to `path`, atomically: the bytes go to a temporary
// `path.tmp-XXXXXX` in the same directory, which is flushed, fsync'ed and renamed over `path`.
// On any failure the temporary is removed, a previous file at `path` is left intact, and a
// FormatError names the path and the OS's reason. ValueError (before anything is written) for an
// undefined tensor, an empty, duplicate or reserved ("__metadata__") name, or a name or metadata
// string that is not valid UTF-8. The new file gets the mode of the file it replaces, else 0644.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& named,
                      const std::map<std::string, std::string>& metadata = {});

// Reads and validates every tensor of `path` (see the top of this header). FormatError naming the
// path, and the tensor where one is at fault, on any problem.
SafetensorsFile read_safetensors(const std::filesystem::path& path);

// read_safetensors on bytes already in memory, with the same checks and messages; `name` stands
// in for the path in them.
SafetensorsFile read_safetensors_bytes(std::span<const std::uint8_t> bytes, std::string_view name);

// Loads `path` into existing parameters, all or nothing. First everything is checked: the file as
// in read_safetensors, then that every name in `named_parameters` is in the file with the same
// shape, that the file has no other tensors, and that each parameter is a defined leaf. Only then
// are the values copied in (through mutable_values() of each handle, so the model's tensors
// change: io::load_into(path, model->named_parameters()) works). On any error no parameter has
// changed and the FormatError lists every missing, unexpected and mis-shaped tensor by name.
void load_into(const std::filesystem::path& path, const NamedTensors& named_parameters);

// load_into from bytes already in memory, with the same checks and messages; `name` stands in
// for the path in them.
void load_into_bytes(std::span<const std::uint8_t> bytes, std::string_view name,
                     const NamedTensors& named_parameters);

// save_safetensors(path, model.named_parameters(), metadata): every parameter under its PyTorch
// name ("0.weight"), each tensor once (a module used twice is stored under its first name, as
// safetensors.torch.save_model does), atomically.
void save_model(const nn::Module& model, const std::filesystem::path& path,
                const std::map<std::string, std::string>& metadata = {});

// load_into(path, model.named_parameters()), all or nothing, with "load_model" in the messages;
// returns the file's metadata (empty when it has none). Strict, as PyTorch's
// load_state_dict(strict=True): a missing, unexpected or mis-shaped tensor is a FormatError and
// no parameter changes. To load part of a file, read_safetensors it and copy by hand.
std::map<std::string, std::string> load_model(nn::Module& model, const std::filesystem::path& path);

}  // namespace tapegrad::io
