// Writing result files safely: atomically (a failed write leaves the old
// file), and checking up front that a path can be written, so that a long run
// does not fail only at its end.
#pragma once

#include <filesystem>
#include <string>

namespace gcn {

// Writes atomically: a temporary file beside the target, flushed and fsynced,
// then renamed over it. A failure leaves any previous file untouched and
// throws gcn::Error naming the path and the reason.
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

// Throws gcn::UsageError when `path` cannot be written (missing or unwritable
// directory), so a long run does not fail only at its end.
void check_writable(const std::filesystem::path& path, const char* option);

}  // namespace gcn
