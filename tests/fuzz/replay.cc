// vecpack_fuzz_replay TARGET [FILE_OR_FOLDER...]: runs the inputs through the fuzz target's
// LLVMFuzzerTestOneInput without libFuzzer, so that every saved input (seeds and the inputs
// that once crashed a reader) is checked by the ordinary test suite with any compiler.
// Without paths it replays tests/fuzz/corpus/TARGET/. Each target's source is compiled with
// LLVMFuzzerTestOneInput renamed to vecpack_fuzz_TARGET (see CMakeLists.txt).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <typeinfo>
#include <vector>

#define VECPACK_FUZZ_TARGETS(X) \
  X(vecpack) X(word2vec_text) X(word2vec_binary) X(glove) X(fasttext) X(npy) X(spec) X(codec_params) X(changes) X(roundtrip) X(hdf5)

#define VECPACK_DECLARE(name) extern "C" int vecpack_fuzz_##name(const uint8_t* data, size_t size);
VECPACK_FUZZ_TARGETS(VECPACK_DECLARE)

namespace {

struct Target {
  const char* name;
  int (*run)(const uint8_t*, size_t);
};

#define VECPACK_ENTRY(name) Target{#name, &vecpack_fuzz_##name},
const Target kTargets[] = {VECPACK_FUZZ_TARGETS(VECPACK_ENTRY)};

std::vector<std::filesystem::path> inputs_of(const std::filesystem::path& path) {
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(path)) {
    for (const auto& entry : std::filesystem::directory_iterator(path))
      if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') files.push_back(entry.path());
    std::sort(files.begin(), files.end());
  } else if (std::filesystem::is_regular_file(path)) {
    files.push_back(path);
  }
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TARGET [FILE_OR_FOLDER...]\ntargets:", argv[0]);
    for (const Target& t : kTargets) std::fprintf(stderr, " %s", t.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  const Target* target = nullptr;
  for (const Target& t : kTargets)
    if (std::string(argv[1]) == t.name) target = &t;
  if (!target) {
    std::fprintf(stderr, "unknown fuzz target '%s'\n", argv[1]);
    return 2;
  }
  std::vector<std::filesystem::path> roots;
  for (int i = 2; i < argc; ++i) roots.emplace_back(argv[i]);
  if (roots.empty()) roots.emplace_back(std::filesystem::path(VECPACK_FUZZ_CORPUS) / target->name);

  size_t replayed = 0;
  for (const auto& root : roots) {
    std::vector<std::filesystem::path> files = inputs_of(root);
    if (files.empty()) {
      std::fprintf(stderr, "%s: no inputs to replay\n", root.c_str());
      return 1;
    }
    for (const auto& file : files) {
      std::printf("%s %s\n", target->name, file.c_str());
      std::fflush(stdout);
      std::ifstream in(file, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      try {
        target->run(bytes.data(), bytes.size());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s escaped the fuzz target: %s\n", file.c_str(), typeid(e).name(), e.what());
        return 1;
      } catch (...) {
        std::fprintf(stderr, "%s: an exception of unknown type escaped the fuzz target\n", file.c_str());
        return 1;
      }
      ++replayed;
    }
  }
  std::printf("%s: %zu inputs replayed without a finding\n", target->name, replayed);
  return 0;
}
