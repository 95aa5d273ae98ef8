// Checkpoints in the safetensors format, so that PyG can load what gcn-train
// saves (model.load_state_dict) and gcn-train can start from what PyG trained.
//
// safetensors: an 8-byte little-endian uint64 N, N bytes of UTF-8 JSON header
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// padded with spaces, then the data buffer (offsets relative to its start,
// tensors contiguous, row-major, little-endian). Only F32 is read or written.
//
// The tutorial model's tensors use PyG's state_dict names and layouts, which
// store each weight as [out, in] — the transpose of our ParamLayout:
//   conv1.lin.weight (H, F)   conv1.bias (H)   conv2.lin.weight (C, H)   conv2.bias (C)
// A training-state (resume) checkpoint adds Adam's moments in the same layouts
// under "optimizer.exp_avg.<name>" and "optimizer.exp_avg_sq.<name>".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gcn/nn/params.hpp"
#include "gcn/train/trainer.hpp"

namespace gcn {

// Tensor-name prefixes of Adam's first and second moments in a resume checkpoint.
inline constexpr const char* kAdamExpAvgPrefix = "optimizer.exp_avg.";
inline constexpr const char* kAdamExpAvgSqPrefix = "optimizer.exp_avg_sq.";
// Training-state checkpoints also hold the best validation epoch's parameters.
inline constexpr const char* kBestParamsPrefix = "best.";

struct Tensor32 {
  std::string name;
  std::vector<int64_t> shape;  // row-major; {} is a scalar
  std::vector<float> data;     // (product of shape)
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // "__metadata__": strings only
  std::vector<Tensor32> tensors;                // read: in name order

  const Tensor32* find(const std::string& name) const;  // null when absent
};

// Strict reader. Every length and offset is checked against the file size
// before anything is allocated; the offsets must tile the data buffer exactly
// (no gap, overlap or trailing bytes). Throws DataError "<path>: <problem>".
SafetensorsFile read_safetensors(const std::filesystem::path& path);
// The same on bytes in memory; `name` prefixes the error messages.
SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name);

// Tensors in name order, compact JSON header padded with spaces to a multiple
// of 8 bytes (byte-identical to the reference implementation's output).
// Throws gcn::Error on inconsistent input (shape vs data size, duplicate names).
std::string serialize_safetensors(const SafetensorsFile& file);
// Atomic (write_file_atomic): a failed write leaves any existing file untouched.
void write_safetensors(const std::filesystem::path& path, const SafetensorsFile& file);

// Appends the four model tensors "<prefix>conv1.lin.weight", ... built from a
// flat ParamLayout array (params, or Adam's moments).
void add_flat(SafetensorsFile& file, const std::string& prefix, const ModelShape& shape,
              const std::vector<float>& flat);
// The inverse: a flat ParamLayout array from "<prefix>conv1.lin.weight", ...
// DataError naming the tensor when one is missing or has the wrong shape.
std::vector<float> get_flat(const SafetensorsFile& file, const std::string& prefix,
                            const ModelShape& shape, const std::string& path_for_errors);

// The model's parameters as PyG's state_dict.
SafetensorsFile model_to_safetensors(const ModelShape& shape, const std::vector<float>& flat_params,
                                     std::map<std::string, std::string> metadata = {});
// The parameters (ParamLayout order) for a model of shape `expected`. Accepts
// the optimizer tensors of a resume checkpoint; any other tensor is an error.
std::vector<float> model_from_safetensors(const SafetensorsFile& file, const ModelShape& expected,
                                          const std::string& path_for_errors);
// (F, H, C) from the model tensors' shapes; DataError when missing or inconsistent.
ModelShape shape_from_safetensors(const SafetensorsFile& file, const std::string& path_for_errors);

// A training-state checkpoint (--checkpoint-every / --resume): the model
// tensors under PyG's names, Adam's moments (optimizer.exp_avg.*,
// optimizer.exp_avg_sq.*), the best epoch's parameters (best.*, with
// --select best-val), and in the metadata "epoch", "best_epoch" and "history"
// (a JSON array of the epochs so far) beside the caller's own keys.
SafetensorsFile train_state_to_safetensors(const ModelShape& shape, const TrainState& state,
                                           std::map<std::string, std::string> metadata);
TrainState train_state_from_safetensors(const SafetensorsFile& file, const ModelShape& shape,
                                        const std::string& path_for_errors);

// A metadata value; DataError "<path>: metadata key '<key>' missing" when absent.
const std::string& get_metadata(const SafetensorsFile& file, const std::string& key,
                                const std::string& path_for_errors);

}  // namespace gcn
