#include "row_store.h"

#include <algorithm>
#include <bit>

#include "bytes.h"
#include "mapped_file.h"
#include "vecpack/errors.h"

namespace vecpack {

Segment::Segment(const uint8_t* codes, size_t rows, int64_t id_base, const int64_t* ids, size_t position,
                 std::shared_ptr<const void> owner, std::shared_ptr<const MappedFile> mapping)
    : codes_(codes),
      rows_(rows),
      id_base_(id_base),
      ids_(ids),
      position_(position),
      owner_(std::move(owner)),
      mapping_(std::move(mapping)) {}

const ScanLayout* Segment::layout(const Quantizer& quantizer, size_t code_size) const {
  std::call_once(layout_built_, [&] {
    // A search reads every code: ask for the whole run once instead of page by page.
    if (mapping_) mapping_->will_scan(codes_, uint64_t(rows_) * code_size);
    layout_ = quantizer.scan_layout(codes_, rows_);
  });
  return layout_.get();
}

namespace {

// Rows [skip, skip + count) of a segment with ids shifted by `by`.
std::shared_ptr<const Segment> sub_segment(const Segment& s, size_t code_size, int64_t by, size_t skip, size_t count) {
  std::shared_ptr<const void> owner = s.owner();
  const int64_t* ids = nullptr;
  if (s.has_id_map()) {
    auto shifted = std::make_shared<std::vector<int64_t>>(s.id_map() + skip, s.id_map() + skip + count);
    for (int64_t& id : *shifted) id += by;
    ids = shifted->data();
    owner = std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<const void>>>(owner, shifted);
  }
  return std::make_shared<Segment>(s.codes() + skip * code_size, count, s.id_base() + by + static_cast<int64_t>(skip), ids,
                                   s.position() + skip, std::move(owner), s.mapping());
}

std::string row_range(size_t begin, size_t count) {
  return "rows " + std::to_string(begin) + ".." + std::to_string(begin + count);
}

}  // namespace

RowStore::RowStore(std::shared_ptr<const Codec> codec, Segments segments)
    : codec_(std::move(codec)),
      segments_(std::move(segments)),
      code_size_(codec_->code_size()),
      parameter_bytes_(std::make_shared<ParameterBytes>()),
      id_index_(std::make_unique<IdIndex>()) {
  for (const auto& s : segments_) rows_ += s->rows();
}

RowStore::RowStore(std::shared_ptr<const Codec> codec, const uint8_t* codes, size_t rows, std::shared_ptr<const void> owner)
    : RowStore(std::move(codec), Segments{std::make_shared<Segment>(codes, rows, 0, nullptr, 0, std::move(owner))}) {}

std::shared_ptr<RowStore> RowStore::open(const ContainerReader& file, size_t rows, size_t dim, const StoreSections& sections,
                                         const KeyLookup& keys) {
  const std::string codec_type(sections.codec), codes_type(sections.codes);
  ByteSpan params = file.section(codec_type, /*verify=*/true);
  auto loaded = std::make_shared<Codec>(Codec::load(params.data, params.size));
  if (loaded->capabilities() & kNeedsKeys) {
    if (!keys)
      throw FormatError(file.path() + ": section " + codec_type + ": codec '" + loaded->spec() +
                            "' derives rows from their keys, and these rows have none",
                        codec_type, file.find(codec_type)->offset);
    loaded->bind_keys(keys);
  }
  std::shared_ptr<const Codec> codec = std::move(loaded);
  if (codec->dim() != dim)
    throw FormatError(file.path() + ": section " + codec_type + ": codec dimension " + std::to_string(codec->dim()) +
                          " disagrees with META dimension " + std::to_string(dim),
                      codec_type, file.find(codec_type)->offset);
  ByteSpan codes = file.section(codes_type, /*verify=*/false);
  uint64_t expected = checked_mul(rows, codec->code_size(), codes_type.c_str());
  if (codes.size != expected)
    throw FormatError(file.path() + ": section " + codes_type + " has " + std::to_string(codes.size) + " bytes, " +
                          std::to_string(rows) + " rows of " + std::to_string(codec->code_size()) + " bytes need " +
                          std::to_string(expected),
                      codes_type, file.find(codes_type)->offset);
  auto segment = std::make_shared<Segment>(codes.data, rows, 0, nullptr, 0, file.mapping(), file.mapping());
  auto store = std::make_shared<RowStore>(std::move(codec), Segments{std::move(segment)});
  store->parameter_bytes_->value = params.size;
  std::call_once(store->parameter_bytes_->measured, [] {});
  return store;
}

std::shared_ptr<const RowStore> RowStore::concatenate(const std::vector<std::shared_ptr<const RowStore>>& parts) {
  if (parts.empty()) throw Error("a store needs at least one part");
  Segments segments;
  int64_t first = 0;
  for (const auto& part : parts) {
    for (const auto& s : part->segments()) segments.push_back(sub_segment(*s, part->code_size_, first, 0, s->rows()));
    first += static_cast<int64_t>(part->rows());
  }
  auto out = std::make_shared<RowStore>(parts.front()->codec_, std::move(segments));
  out->parameter_bytes_ = parts.front()->parameter_bytes_;
  return out;
}

const RowStore::IdIndex& RowStore::id_index() const {
  if (id_index_->ready.load(std::memory_order_acquire)) return *id_index_;
  std::call_once(id_index_->built, [this] {
    IdIndex& index = *id_index_;
    index.ranges = std::none_of(segments_.begin(), segments_.end(), [](const auto& s) { return s->has_id_map(); });
    if (index.ranges) {
      index.order.resize(segments_.size());
      for (size_t i = 0; i < segments_.size(); ++i) index.order[i] = i;
      std::sort(index.order.begin(), index.order.end(),
                [this](size_t a, size_t b) { return segments_[a]->id_base() < segments_[b]->id_base(); });
      for (size_t i : index.order) index.first_ids.push_back(segments_[i]->id_base());
      return;
    }
    constexpr uint64_t kFree = ~uint64_t{0};
    index.dense.assign(rows_, kFree);
    for (size_t s = 0; s < segments_.size(); ++s)
      for (size_t r = 0; r < segments_[s]->rows(); ++r) {
        const int64_t id = segments_[s]->id(r);
        if (id < 0 || uint64_t(id) >= rows_ || index.dense[size_t(id)] != kFree)
          throw FormatError("the id map of the stored rows is damaged: segment " + std::to_string(s) + " row " +
                            std::to_string(r) + " has id " + std::to_string(id) +
                            (id >= 0 && uint64_t(id) < rows_ ? ", which another row has too" : ", outside 0.." + std::to_string(rows_)));
        index.dense[size_t(id)] = (uint64_t(s) << 40) | r;
      }
  });
  id_index_->ready.store(true, std::memory_order_release);
  return *id_index_;
}

RowStore::Location RowStore::locate(int64_t id) const {
  const IdIndex& index = id_index();
  if (index.ranges) {
    auto after = std::upper_bound(index.first_ids.begin(), index.first_ids.end(), id);
    if (after != index.first_ids.begin()) {
      const size_t at = index.order[size_t(after - index.first_ids.begin()) - 1];
      const Segment& s = *segments_[at];
      if (id - s.id_base() < static_cast<int64_t>(s.rows())) return {&s, static_cast<size_t>(id - s.id_base()), at};
    }
  } else {
    if (id >= 0 && uint64_t(id) < rows_) {
      const uint64_t where = index.dense[size_t(id)];
      const size_t at = static_cast<size_t>(where >> 40);
      return {segments_[at].get(), static_cast<size_t>(where & ((uint64_t{1} << 40) - 1)), at};
    }
  }
  throw NotFoundError("row " + std::to_string(id) + " is out of range (" + std::to_string(rows_) + " rows)");
}

void RowStore::reconstruct(size_t begin, size_t count, float* out) const {
  if (begin > rows_ || count > rows_ - begin)
    throw NotFoundError(row_range(begin, count) + " are out of range (" + std::to_string(rows_) + " rows)");
  const size_t d = dim();
  for (size_t done = 0; done < count;) {
    const Location at = locate(static_cast<int64_t>(begin + done));
    // Rows with consecutive ids in one segment decode together.
    size_t run = 1;
    if (!at.segment->has_id_map()) run = std::min(count - done, at.segment->rows() - at.row);
    codec_->decode(at.segment->codes() + at.row * code_size_, run, out + done * d, at.segment->position() + at.row);
    done += run;
  }
}

std::shared_ptr<const RowStore> RowStore::slice(size_t begin, size_t count) const {
  if (begin > rows_ || count > rows_ - begin)
    throw NotFoundError(row_range(begin, count) + " are out of range (" + std::to_string(rows_) + " rows)");
  if (!id_index().ranges) return slice_mapped(begin, count);
  // The pieces of the segments that hold ids [begin, begin + count), renumbered from 0.
  Segments pieces;
  const int64_t low = static_cast<int64_t>(begin), high = static_cast<int64_t>(begin + count);
  for (const auto& s : segments_) {
    const int64_t first = std::max(low, s->id_base()), last = std::min(high, s->id_base() + static_cast<int64_t>(s->rows()));
    if (first < last)
      pieces.push_back(sub_segment(*s, code_size_, -low, static_cast<size_t>(first - s->id_base()), static_cast<size_t>(last - first)));
  }
  auto out = std::make_shared<RowStore>(codec_, std::move(pieces));
  out->parameter_bytes_ = parameter_bytes_;
  return out;
}

std::shared_ptr<const RowStore> RowStore::gathered(const std::vector<int64_t>& ids) const {
  auto owned = std::make_shared<OwnedRows>();
  owned->codes.resize(ids.size() * code_size_);
  for (size_t i = 0; i < ids.size();) {
    const Location at = locate(ids[i]);
    // Ids that follow each other in a segment without an id map are copied as one run.
    size_t run = 1;
    if (!at.segment->has_id_map())
      while (i + run < ids.size() && at.row + run < at.segment->rows() && ids[i + run] == ids[i] + static_cast<int64_t>(run)) ++run;
    std::copy_n(at.segment->codes() + at.row * code_size_, run * code_size_, owned->codes.data() + i * code_size_);
    i += run;
  }
  const uint8_t* codes = owned->codes.data();
  auto out = std::make_shared<RowStore>(codec_, codes, ids.size(), std::shared_ptr<const void>(owned));
  out->parameter_bytes_ = parameter_bytes_;
  return out;
}

std::shared_ptr<const RowStore> RowStore::kept(const RowFilter& keep, bool flat) const {
  if (flat) {
    const std::vector<int64_t> ids = keep.active() ? keep.ids() : [this] {
      std::vector<int64_t> all(rows_);
      for (size_t i = 0; i < rows_; ++i) all[i] = static_cast<int64_t>(i);
      return all;
    }();
    return gathered(ids);
  }
  // The new id of an allowed id is the number of allowed ids below it.
  const uint64_t* words = keep.words();
  std::vector<uint64_t> ranks((rows_ + 63) / 64 + 1, 0);
  for (size_t w = 0; w + 1 < ranks.size(); ++w) ranks[w + 1] = ranks[w] + (words ? std::popcount(words[w]) : 64);
  auto owned = std::make_shared<OwnedRows>();
  std::vector<uint64_t> starts{0};
  for (const auto& s : segments_) {
    for (size_t r = 0; r < s->rows(); ++r) {
      const int64_t id = s->id(r);
      if (!keep.allows(id)) continue;
      const uint64_t u = static_cast<uint64_t>(id);
      const uint64_t below = words ? std::popcount(words[u >> 6] & ((uint64_t{1} << (u & 63)) - 1)) : (u & 63);
      owned->ids.push_back(static_cast<int64_t>(ranks[u >> 6] + below));
      owned->codes.insert(owned->codes.end(), s->codes() + r * code_size_, s->codes() + (r + 1) * code_size_);
    }
    starts.push_back(owned->ids.size());
  }
  auto out = std::make_shared<RowStore>(codec_, segments_of(owned, code_size_, starts));
  out->parameter_bytes_ = parameter_bytes_;
  return out;
}

std::vector<std::shared_ptr<const Segment>> segments_of(const std::shared_ptr<const OwnedRows>& rows, size_t code_size,
                                                        const std::vector<uint64_t>& starts) {
  std::vector<std::shared_ptr<const Segment>> segments;
  for (size_t i = 0; i + 1 < starts.size(); ++i)
    segments.push_back(std::make_shared<Segment>(rows->codes.data() + starts[i] * code_size, starts[i + 1] - starts[i], 0,
                                                 rows->ids.data() + starts[i], 0, rows));
  return segments;
}

std::shared_ptr<const RowStore> RowStore::slice_mapped(size_t begin, size_t count) const {
  // Every segment keeps its place (an empty one too: in a partitioned store it is a list), with
  // the rows whose ids fall in the range, copied in their order.
  auto owned = std::make_shared<OwnedRows>();
  owned->codes.resize(count * code_size_);
  owned->ids.resize(count);
  const int64_t low = static_cast<int64_t>(begin), high = static_cast<int64_t>(begin + count);
  std::vector<uint64_t> starts;
  size_t at = 0;
  for (const auto& s : segments_) {
    starts.push_back(at);
    for (size_t r = 0; r < s->rows(); ++r) {
      const int64_t id = s->id(r);
      if (id < low || id >= high) continue;
      std::copy_n(s->codes() + r * code_size_, code_size_, owned->codes.data() + at * code_size_);
      owned->ids[at++] = id - low;
    }
  }
  starts.push_back(at);
  Segments pieces = segments_of(owned, code_size_, starts);
  auto out = std::make_shared<RowStore>(codec_, std::move(pieces));
  out->parameter_bytes_ = parameter_bytes_;
  return out;
}

std::shared_ptr<const RowStore> RowStore::regrouped(Segments segments) const {
  auto out = std::make_shared<RowStore>(codec_, std::move(segments));
  out->parameter_bytes_ = parameter_bytes_;
  return out;
}

const uint8_t* RowStore::contiguous_codes() const {
  if (segments_.size() != 1 || segments_.front()->has_id_map() || segments_.front()->id_base() != 0) return nullptr;
  return segments_.front()->codes();
}

uint64_t RowStore::parameter_bytes() const {
  std::call_once(parameter_bytes_->measured, [this] { parameter_bytes_->value = codec_->serialize().size(); });
  return parameter_bytes_->value;
}

void RowStore::write(ContainerWriter& writer, const StoreSections& sections) const {
  // A file's rows start at position 0; rows placed by position would decode as other rows.
  const size_t position = segments_.empty() ? 0 : segments_.front()->position();
  if (position != 0 && (codec_->capabilities() & kSharedParameters))
    throw Error("rows " + std::to_string(position) + ".. of a table with codec '" + codec_->spec() +
                "' cannot be saved on their own: its rows are placed by position in the whole table (compress the "
                "slice again to save it)");
  auto params = codec_->serialize();
  writer.add(sections.codec, params.data(), params.size());
  if (const uint8_t* codes = contiguous_codes()) {
    writer.add(sections.codes, codes, code_bytes(), kCodeAlign);
    return;
  }
  // Several segments: their codes in id order.
  std::vector<uint8_t> codes(code_bytes());
  for (size_t id = 0; id < rows_;) {
    const Location at = locate(static_cast<int64_t>(id));
    const size_t run = at.segment->has_id_map() ? 1 : std::min(rows_ - id, at.segment->rows() - at.row);
    std::copy_n(at.segment->codes() + at.row * code_size_, run * code_size_, codes.data() + id * code_size_);
    id += run;
  }
  writer.add(sections.codes, codes.data(), codes.size(), kCodeAlign);
}

}  // namespace vecpack
