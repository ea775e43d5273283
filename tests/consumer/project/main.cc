// A user's program: build a table, save it, map it back and search it (C++17, public API only).
#include <vecpack/vecpack.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto table = vecpack::Table::from_rows({1, 0, 0.8f, 0.6f, 0, 1}, 2, {"a", "b", "c"});
  table.compress("f16").save(argv[1]);
  auto mapped = vecpack::Table::open(argv[1]);
  auto query = mapped.get("b");
  vecpack::SearchOptions options;
  options.k = 2;
  auto result = mapped.search(query.data(), 1, options);
  std::cout << "nearest to b:";
  for (size_t i = 0; i < result.k; ++i) std::cout << " " << mapped.key(result.ids[i]);
  std::cout << "\n";
  return 0;
}
