#include <deque>
#include <unordered_set>

#include "vecpack/errors.h"
#include "vecpack/table.h"

namespace vecpack {

struct TableBuilder::Impl {
  size_t dim = 0;
  std::vector<float> values;
  std::deque<std::string> keys;              // stable addresses for the set below
  std::unordered_set<std::string_view> seen;
  size_t duplicates = 0;
  bool keyed = false, unkeyed = false;

  void check(size_t count) {
    if (dim == 0) {
      if (count == 0) throw Error("a row needs at least one value");
      if (count > kMaxDimension)
        throw Error("rows of " + std::to_string(count) + " values exceed the largest dimension, " + std::to_string(kMaxDimension));
      dim = count;
    }
    if (count != dim)
      throw Error("row " + std::to_string(values.size() / dim) + " has " + std::to_string(count) + " values, expected " +
                  std::to_string(dim));
  }
};

TableBuilder::TableBuilder(size_t dim) : impl_(std::make_unique<Impl>()) {
  if (dim > kMaxDimension)
    throw Error("dimension " + std::to_string(dim) + " exceeds the largest supported, " + std::to_string(kMaxDimension));
  impl_->dim = dim;
}
TableBuilder::~TableBuilder() = default;
TableBuilder::TableBuilder(TableBuilder&&) noexcept = default;
TableBuilder& TableBuilder::operator=(TableBuilder&&) noexcept = default;

void TableBuilder::reserve(size_t rows) {
  if (impl_->dim) impl_->values.reserve(rows * impl_->dim);
  impl_->seen.reserve(rows);
}
size_t TableBuilder::dim() const { return impl_->dim; }
size_t TableBuilder::size() const { return impl_->dim ? impl_->values.size() / impl_->dim : 0; }
size_t TableBuilder::duplicates() const { return impl_->duplicates; }

bool TableBuilder::add(std::string_view key, const float* values, size_t count) {
  if (impl_->unkeyed) throw Error("cannot mix keyed and unkeyed rows in one table");
  impl_->keyed = true;
  impl_->check(count);
  if (impl_->seen.count(key)) {
    ++impl_->duplicates;
    return false;
  }
  impl_->keys.emplace_back(key);
  impl_->seen.insert(impl_->keys.back());
  impl_->values.insert(impl_->values.end(), values, values + count);
  return true;
}

void TableBuilder::add(const float* values, size_t count) {
  if (impl_->keyed) throw Error("cannot mix keyed and unkeyed rows in one table");
  impl_->unkeyed = true;
  impl_->check(count);
  impl_->values.insert(impl_->values.end(), values, values + count);
}

Table TableBuilder::finish(Metric metric) {
  if (impl_->dim == 0) throw Error("the input has no rows");
  impl_->seen.clear();
  std::vector<std::string> keys(std::make_move_iterator(impl_->keys.begin()), std::make_move_iterator(impl_->keys.end()));
  impl_->keys.clear();
  size_t dim = impl_->dim;
  Table t = Table::from_rows(std::move(impl_->values), dim, std::move(keys), metric);
  impl_ = std::make_unique<Impl>();
  return t;
}

}  // namespace vecpack
