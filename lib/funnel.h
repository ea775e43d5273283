// Funnel search (adaptive retrieval): shortlist every row on its leading dimensions, then
// rescore the shortlist with more dimensions, ending with all of them. Needs codes that decode
// dimension by dimension (kPrefixDecodable); each stage reads only the leading bytes
// of the codes it scores. See docs/TRANSFORMS.md.
#pragma once

#include "row_store.h"
#include "vecpack/types.h"

namespace vecpack {

// search_store() with options.funnel set comes here. queries: nq x store.dim(), in the table's
// space. Dimensions count in the quantizer's space (after the codec's transforms).
SearchResult funnel_search(const RowStore& store, const float* queries, size_t nq, Metric metric,
                           const SearchOptions& options);

}  // namespace vecpack
