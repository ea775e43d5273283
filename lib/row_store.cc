#include "row_store.h"

#include "block_scorer.h"
#include "bytes.h"
#include "vecpack/errors.h"

namespace vecpack {

CodesStore::CodesStore(std::shared_ptr<const Codec> codec, const uint8_t* codes, size_t rows,
                       std::shared_ptr<const void> owner, size_t first_row)
    : codec_(std::move(codec)),
      codes_(codes),
      rows_(rows),
      code_size_(codec_->code_size()),
      first_row_(first_row),
      parameters_(codec_->serialize().size()),
      owner_(std::move(owner)) {}

std::shared_ptr<CodesStore> CodesStore::open(const ContainerReader& file, size_t rows, size_t dim,
                                             const StoreSections& sections, const KeyLookup& keys) {
  const std::string codec_type(sections.codec), codes_type(sections.codes);
  ByteSpan params = file.section(codec_type, /*verify=*/true);
  auto loaded = std::make_shared<Codec>(Codec::load(params.data, params.size));
  if (loaded->needs_keys()) {
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
  auto store = std::make_shared<CodesStore>(std::move(codec), codes.data, rows, file.mapping());
  store->mapping_ = file.mapping();
  return store;
}

void CodesStore::reconstruct(size_t begin, size_t count, float* out) const {
  if (begin > rows_ || count > rows_ - begin)
    throw NotFoundError("rows " + std::to_string(begin) + ".." + std::to_string(begin + count) + " are out of range (" +
                        std::to_string(rows_) + " rows)");
  codec_->decode(codes_ + begin * code_size_, count, out, first_row_ + begin);
}

void RowScorer::select_above(size_t begin, size_t count, size_t nq, const float* thresholds,
                             BlockCandidates& out) const {
  static thread_local std::vector<float> scores;
  scores.resize(nq * count);
  score(begin, count, scores.data(), count);
  select_scores_above(scores.data(), nq, count, count, thresholds, out);
}

namespace {
class CodesScorer final : public RowScorer {
 public:
  CodesScorer(std::unique_ptr<CodeScorer> inner, const uint8_t* codes, size_t code_size, size_t first_row)
      : inner_(std::move(inner)), codes_(codes), code_size_(code_size), first_row_(first_row) {}
  void score(size_t begin, size_t count, float* out, size_t ld) const override {
    inner_->score_at(codes_ + begin * code_size_, first_row_ + begin, count, out, ld);
  }
  void select_above(size_t begin, size_t count, size_t nq, const float* thresholds, BlockCandidates& out) const override {
    inner_->select_above(codes_ + begin * code_size_, first_row_ + begin, count, nq, thresholds, out);
  }

 private:
  std::unique_ptr<CodeScorer> inner_;
  const uint8_t* codes_;
  size_t code_size_, first_row_;
};
}  // namespace

std::unique_ptr<RowScorer> CodesStore::scorer(const float* queries, size_t nq, Metric metric) const {
  // A search reads every code: ask for the whole section once instead of page by page.
  if (mapping_ && !scanned_.exchange(true)) mapping_->will_scan(codes_, code_bytes());
  std::call_once(layout_built_, [this] { layout_ = codec_->quantizer().scan_layout(codes_, rows_); });
  return std::make_unique<CodesScorer>(codec_->scorer(queries, nq, metric, layout_.get()), codes_, code_size_, first_row_);
}

std::unique_ptr<RowScorer> CodesStore::upper_bound_scorer(const float* queries, size_t nq, Metric metric) const {
  auto inner = codec_->upper_bound_scorer(queries, nq, metric);
  if (!inner) return nullptr;
  if (mapping_ && !scanned_.exchange(true)) mapping_->will_scan(codes_, code_bytes());
  return std::make_unique<CodesScorer>(std::move(inner), codes_, code_size_, first_row_);
}

void CodesStore::write(ContainerWriter& writer, const StoreSections& sections) const {
  // A file's rows start at position 0; rows placed by position would decode as other rows.
  if (first_row_ != 0 && (codec_->capabilities() & kSharedParameters))
    throw Error("rows " + std::to_string(first_row_) + ".. of a table with codec '" + codec_->spec() +
                "' cannot be saved on their own: its rows are placed by position in the whole table (compress the "
                "slice again to save it)");
  auto params = codec_->serialize();
  writer.add(sections.codec, params.data(), params.size());
  writer.add(sections.codes, codes_, code_bytes(), kCodeAlign);
}

}  // namespace vecpack
