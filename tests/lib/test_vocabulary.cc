#include <doctest/doctest.h>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vocabulary.h"

using namespace vecpack;

TEST_CASE("vocabulary: every key is found at its row, others are not") {
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) keys.push_back("w" + std::to_string(i * 31));
  keys.push_back("");  // the empty string is a valid key
  keys.push_back("naïve café 東京");
  auto bytes = build_vocabulary(keys);
  VocabularyView v(bytes.data(), bytes.size(), keys.size(), "test");
  CHECK(v.size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(v.find(keys[i]).has_value());
    CHECK(*v.find(keys[i]) == i);
    CHECK(v.key(i) == keys[i]);
  }
  CHECK_FALSE(v.find("w1").has_value());
  CHECK_FALSE(v.find("missing").has_value());
  CHECK_THROWS_AS(v.key(keys.size()), NotFoundError);
}

TEST_CASE("vocabulary: layout header and damaged sections") {
  std::vector<std::string> keys = {"a", "bb", "ccc"};
  auto bytes = build_vocabulary(keys);
  const auto* h = reinterpret_cast<const uint64_t*>(bytes.data());
  CHECK(h[0] == 3);
  CHECK(h[1] == 16);  // smallest power of two index
  CHECK(h[2] == 6);
  CHECK(bytes.size() == 32 + 8 * 4 + 8 * 16 + 6);
  CHECK(std::string(bytes.end() - 6, bytes.end()) == "abbccc");

  CHECK_THROWS_WITH_AS(VocabularyView(bytes.data(), bytes.size(), 4, "VOCB"), doctest::Contains("3 keys for 4 rows"),
                       FormatError);
  CHECK_THROWS_AS(VocabularyView(bytes.data(), bytes.size() - 1, 3, "VOCB"), FormatError);
  CHECK_THROWS_AS(VocabularyView(bytes.data(), 10, 3, "VOCB"), FormatError);

  auto damaged = bytes;
  reinterpret_cast<uint64_t*>(damaged.data())[4 + 1] = 1000;  // offset of key 1 beyond the blob
  VocabularyView v(damaged.data(), damaged.size(), 3, "VOCB");
  CHECK_THROWS_WITH_AS(v.key(1), doctest::Contains("damaged"), FormatError);

  auto huge = bytes;
  reinterpret_cast<uint64_t*>(huge.data())[1] = uint64_t(1) << 61;  // bucket count overflowing sizes
  CHECK_THROWS_AS(VocabularyView(huge.data(), huge.size(), 3, "VOCB"), FormatError);
}
