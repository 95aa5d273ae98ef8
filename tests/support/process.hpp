// Running gcn-train (or any program) as a user runs it, for the tests that
// check the programs from outside: exit status, standard output and error.
// One helper for every such test (test_cli, test_graph_cli, test_tools,
// test_every_model).
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "test_util.hpp"

namespace gcn::test {

struct ProcessRun {
  int status = -1;  // the exit status; -1 when the program did not exit (a signal)
  std::string out, err;
};

// `s` as one single-quoted shell word.
inline std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `program args` (args: shell words, already quoted where needed) with
// standard input from /dev/null, from `cwd` (empty: the current folder), with
// `env` (shell assignments, e.g. "GCN_DATA_ROOT=/x ") before it.
inline ProcessRun run_program(const std::string& program, const std::string& args, const std::string& env = "",
                              const std::filesystem::path& cwd = {}) {
  const TempDir tmp;
  std::string cmd = cwd.empty() ? std::string() : "cd " + quoted(cwd.string()) + " && ";
  cmd += env + quoted(program) + " " + args + " >" + quoted((tmp.path() / "out").string()) + " 2>" +
         quoted((tmp.path() / "err").string()) + " </dev/null";
  ProcessRun r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_file(tmp.path() / "out");
  r.err = read_file(tmp.path() / "err");
  return r;
}

#ifdef GCN_BINARY_DIR
inline const std::string& gcn_train_path() {
  static const std::string path = GCN_BINARY_DIR "/src/gcn-train";
  return path;
}

// gcn-train with the tests' data root (or none: with_data_root = false).
inline ProcessRun run_gcn_train(const std::string& args, bool with_data_root = true) {
  const std::string env = with_data_root ? "GCN_DATA_ROOT=" + quoted(data_root().string()) + " " : "GCN_DATA_ROOT= ";
  return run_program(gcn_train_path(), args, env);
}
#endif

inline int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace gcn::test
