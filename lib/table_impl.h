// Internal state behind Table handles.
#pragma once

#include <memory>
#include <vector>

#include "row_store.h"
#include "vecpack/table.h"
#include "vocabulary.h"

namespace vecpack {

// An n-gram pool that answers keys the table does not have (see SubwordScheme).
struct SubwordPool {
  SubwordScheme scheme;
  Table pool;  // unkeyed, the table's dimension
};

struct Table::Impl {
  std::shared_ptr<const RowStore> store;
  std::shared_ptr<const void> vocab_owner;  // keeps the VOCB bytes alive (mapping or buffer)
  const uint8_t* vocab_bytes = nullptr;
  uint64_t vocab_size = 0;
  VocabularyView vocab;
  std::shared_ptr<const SubwordPool> subwords;  // null: none
  std::shared_ptr<const RowStore> rerank;       // the same rows, encoded again for rescoring; null: none
  std::vector<SectionInfo> sections;  // of the file, when opened from one
  uint64_t file_bytes = 0;
};

}  // namespace vecpack
