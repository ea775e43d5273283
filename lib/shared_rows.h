// Bucket hashing for shared-parameter rows: the trainable HashEmbedding (embeddings.h) and the
// hash codec use the same h_j, so a table trained with one is read with the other.
//
//   h_j(id)         = xxh64(the 8 little-endian bytes of id, seed j) % buckets
//   h_j(key)        = xxh64(the UTF-8 bytes of key, seed j) % buckets
//   h_j(id, table)  = h_j(id) for table 0; otherwise xxh64(the 8 little-endian bytes of id then
//                     the 4 little-endian bytes of table, seed j) % buckets
//   h_j(key, table) = h_j(key) for table 0; otherwise xxh64(the bytes of key then the 4
//                     little-endian bytes of table, seed j) % buckets
//
// Defined in embeddings.cc. buckets must be at least 1.
#pragma once

#include <cstdint>
#include <string_view>

namespace vecpack {

uint64_t hash_bucket(uint64_t id, uint32_t j, uint64_t buckets);
uint64_t hash_bucket(std::string_view key, uint32_t j, uint64_t buckets);
uint64_t hash_bucket(uint64_t id, uint32_t table, uint32_t j, uint64_t buckets);
uint64_t hash_bucket(std::string_view key, uint32_t table, uint32_t j, uint64_t buckets);

}  // namespace vecpack
