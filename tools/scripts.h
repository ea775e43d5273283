// Running the Python helpers the CLI relies on (FAISS driver, plots).
#pragma once

#include <string>
#include <vector>

namespace vecpack::cli {

// The interpreter: $VECPACK_PYTHON, else the project's .venv when running from the build tree,
// else python3 on PATH.
std::string python_interpreter();
// tools/bench/NAME: $VECPACK_TOOLS_DIR, else the source tree, else the installed share folder.
std::string bench_script(const std::string& name);
// Runs a command (no shell); returns its exit code and its standard output. Stderr passes through.
int run_capture(const std::vector<std::string>& argv, std::string& out);

}  // namespace vecpack::cli
