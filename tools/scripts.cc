#include "scripts.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "vecpack/errors.h"

namespace vecpack::cli {

std::string python_interpreter() {
  if (const char* env = std::getenv("VECPACK_PYTHON"); env && *env) return env;
#ifdef VECPACK_SOURCE_DIR
  std::string venv = std::string(VECPACK_SOURCE_DIR) + "/.venv/bin/python";
  if (::access(venv.c_str(), X_OK) == 0) return venv;
#endif
  return "python3";
}

std::string bench_script(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("VECPACK_TOOLS_DIR"); env && *env) dirs.push_back(env);
#ifdef VECPACK_SOURCE_DIR
  dirs.push_back(std::string(VECPACK_SOURCE_DIR) + "/tools/bench");
#endif
#ifdef VECPACK_INSTALL_DATA_DIR
  dirs.push_back(std::string(VECPACK_INSTALL_DATA_DIR) + "/bench");
#endif
  for (const auto& dir : dirs) {
    std::string path = dir + "/" + name;
    if (std::filesystem::exists(path)) return path;
  }
  throw Error("cannot find the helper script " + name + " (set VECPACK_TOOLS_DIR to the folder tools/bench)");
}

int run_capture(const std::vector<std::string>& argv, std::string& out) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw IoError(argv[0], "create a pipe for", errno);
  pid_t pid = ::fork();
  if (pid < 0) throw IoError(argv[0], "start", errno);
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(pipe_fds[1]);
  char buf[65536];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace vecpack::cli
