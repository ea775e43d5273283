// The manifest of a folder table (shards.cc): its shards in row order and, for a table that has
// changed (changes.cc), its generation and the file of its deleted row ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vecpack/codec.h"
#include "vecpack/types.h"

namespace vecpack {

inline constexpr const char* kManifestName = "manifest.json";

struct Manifest {
  uint64_t rows = 0, dim = 0;
  Metric metric = Metric::cos;
  bool keys = false;
  std::string spec, fingerprint, rerank_spec;
  std::string partition_fingerprint;  // empty: the shards have no ivf partition
  struct Shard {
    std::string file, checksum;  // checksum: xxh64 of the file in hex; empty: not recorded (a base file)
    uint64_t rows = 0, first_row = 0, bytes = 0;
    std::string low_key, high_key;  // the key range, when the shard has keys and rows
  };
  std::vector<Shard> shards;
  // A changed table: how many changes it has seen, and its deleted ids (file empty: none).
  uint64_t generation = 0;
  struct Deleted {
    std::string file, checksum;
    uint64_t count = 0;
  } deleted;
};

std::string hex64(uint64_t value);
// The identity of a trained codec: its parameters as stored in a file.
uint64_t fingerprint(const Codec& codec);
uint64_t file_checksum(const std::string& path);
// Reads and checks folder/manifest.json; FormatError or IoError naming it.
Manifest read_manifest(const std::string& folder);
// Writes folder/manifest.json atomically.
void write_manifest_file(const std::string& folder, const Manifest& manifest);

// Files a writer adds to a table's folder: delta shards of added rows, the deleted ids, the
// compacted rows, and the writers' lock.
inline constexpr const char* kDeltaPrefix = "delta-";
inline constexpr const char* kDeletedPrefix = "deleted-";
inline constexpr const char* kCompactedPrefix = "compacted-";
inline constexpr const char* kLockName = ".lock";

// The deleted ids the manifest names (ascending, each below manifest.rows), checked against its
// count and checksum; FormatError otherwise.
std::vector<int64_t> read_deleted(const std::string& folder, const Manifest& manifest);

// A table whose changes live in a folder beside it: FILE.vecpack's are in FILE.vecpack.changes,
// whose manifest names the file itself as its first shard, "../FILE.vecpack".
std::string changes_folder_of(const std::string& file);

}  // namespace vecpack
