// word2vec text ("count dim" header, then "word v1 ... vd" per line; also fastText .vec) and
// word2vec binary (the same header, then per row the word, a space and d little-endian float32).
#pragma once

#include "vecpack/formats.h"

namespace vecpack {

extern const FormatDescriptor kWord2vecText;
extern const FormatDescriptor kWord2vecBinary;

// The word2vec text reader; `format_name` becomes the table's source format (fastText .vec
// files are the same text and read through this).
Table read_word2vec_text(const std::string& path, const ReadOptions& options, const char* format_name);

}  // namespace vecpack
