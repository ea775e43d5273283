// Codec: a chain of transforms ending in one quantizer, built from a spec string.
#include <algorithm>
#include <cmath>

#include "block_scorer.h"
#include "bytes.h"
#include "parallel.h"
#include "vecpack/errors.h"
#include "vecpack/registry.h"

namespace vecpack {

uint32_t Stage::capabilities() const { return descriptor().capabilities; }

std::unique_ptr<CodeScorer> Quantizer::scorer(const float* queries, size_t nq, Metric metric) const {
  return std::make_unique<GemmScorer>(queries, nq, dim_in(), metric,
                                      [this](const uint8_t* codes, size_t first_row, size_t count, float* out) {
                                        decode(codes, count, out, first_row);
                                      });
}

std::unique_ptr<CodeScorer> Quantizer::upper_bound_scorer(const float*, size_t, Metric) const { return nullptr; }

std::shared_ptr<const ScanLayout> Quantizer::scan_layout(const uint8_t*, size_t) const { return nullptr; }

void CodeScorer::select_above(const CodeBlock& block, size_t nq, const float* thresholds, BlockCandidates& out) const {
  static thread_local std::vector<float> scores;
  scores.resize(nq * block.count);
  score(block, scores.data(), block.count);
  select_scores_above(scores.data(), nq, block.count, block.count, thresholds, out);
}

void Quantizer::decode_prefix(const uint8_t*, size_t, size_t, size_t, float*) const {
  throw Error("codec '" + spec() + "' cannot decode leading dimensions on their own (its codes are not laid out "
              "dimension by dimension)");
}

struct Codec::Impl {
  std::vector<std::unique_ptr<Stage>> stages;
  const Quantizer& quantizer() const { return static_cast<const Quantizer&>(*stages.back()); }
  const Transform& transform(size_t i) const { return static_cast<const Transform&>(*stages[i]); }
  size_t transform_count() const { return stages.size() - 1; }

  // Applies every transform to n rows; returns x itself when the chain has none.
  const float* transformed(const float* x, size_t n, std::vector<float>& a, std::vector<float>& b) const {
    const float* current = x;
    for (size_t i = 0; i < transform_count(); ++i) {
      std::vector<float>& out = (i % 2 == 0) ? a : b;
      out.resize(n * stages[i]->dim_out());
      transform(i).apply(current, n, out.data());
      current = out.data();
    }
    return current;
  }
};

void Stage::check_next(const Stage&) const {}

static void check_chain(const std::vector<std::unique_ptr<Stage>>& stages, std::string_view spec) {
  for (size_t i = 0; i + 1 < stages.size(); ++i) {
    try {
      stages[i]->check_next(*stages[i + 1]);
    } catch (const SpecError& e) {
      throw SpecError("codec spec '" + std::string(spec) + "': " + e.what());
    }
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& d = stages[i]->descriptor();
    bool last = i + 1 == stages.size();
    if (last && d.kind != StageKind::quantizer)
      throw SpecError("codec spec '" + std::string(spec) + "': the last stage '" + d.name +
                      "' is a transform; end the chain with a quantizer such as 'f16' or 'int8'");
    if (!last && d.kind == StageKind::quantizer)
      throw SpecError("codec spec '" + std::string(spec) + "': stage " + std::to_string(i + 1) + " '" + d.name +
                      "' is a quantizer; only the last stage may be one");
  }
}

Codec::Codec() : impl_(std::make_unique<Impl>()) {}

Codec::Codec(std::string_view spec) : impl_(std::make_unique<Impl>()) {
  auto stages = parse_spec(spec);
  for (size_t i = 0; i < stages.size(); ++i) impl_->stages.push_back(create_stage(stages[i], i + 1, spec));
  check_chain(impl_->stages, spec);
}

Codec::Codec(Codec&&) noexcept = default;
Codec& Codec::operator=(Codec&&) noexcept = default;
Codec::~Codec() = default;

std::string Codec::spec() const {
  std::string s;
  for (size_t i = 0; i < impl_->stages.size(); ++i) s += (i ? "/" : "") + impl_->stages[i]->spec();
  return s;
}

bool Codec::trained() const {
  return std::all_of(impl_->stages.begin(), impl_->stages.end(), [](const auto& s) { return s->trained(); });
}

static void require_trained(const Codec& c) {
  if (!c.trained()) throw Error("codec '" + c.spec() + "' is not trained yet");
}

size_t Codec::dim() const {
  require_trained(*this);
  return impl_->stages.front()->dim_in();
}

size_t Codec::code_size() const {
  require_trained(*this);
  return impl_->quantizer().code_size();
}

uint32_t Codec::capabilities() const {
  uint32_t caps = impl_->quantizer().capabilities();
  if (impl_->transform_count()) caps = (caps | kTransform) & ~kExactDecode;
  return caps;
}

void Codec::train(const float* x, size_t n, size_t d, const TrainOptions& options) {
  if (d == 0) throw Error("cannot train codec '" + spec() + "' on vectors of dimension 0");
  std::vector<float> a, b;
  const float* current = x;
  size_t current_d = d;
  for (size_t i = 0; i < impl_->stages.size(); ++i) {
    impl_->stages[i]->train(current, n, current_d, options);
    if (i + 1 < impl_->stages.size()) {
      std::vector<float>& out = (i % 2 == 0) ? a : b;
      out.resize(n * impl_->stages[i]->dim_out());
      impl_->transform(i).apply(current, n, out.data());
      current = out.data();
      current_d = impl_->stages[i]->dim_out();
    }
  }
}

void Codec::encode(const float* x, size_t n, uint8_t* codes, unsigned threads, size_t first_row) const {
  require_trained(*this);
  const size_t block = 4096, d = dim(), cs = code_size();
  size_t blocks = (n + block - 1) / block;
  parallel_for(blocks, threads, [&](size_t b, unsigned) {
    size_t begin = b * block, count = std::min(block, n - begin);
    std::vector<float> t1, t2;
    const float* rows = impl_->transformed(x + begin * d, count, t1, t2);
    impl_->quantizer().encode(rows, count, codes + begin * cs, first_row + begin);
  });
}

void Codec::decode(const uint8_t* codes, size_t n, float* x, size_t first_row) const {
  require_trained(*this);
  if (impl_->transform_count() == 0) return impl_->quantizer().decode(codes, n, x, first_row);
  std::vector<float> current(n * impl_->quantizer().dim_in()), previous;
  impl_->quantizer().decode(codes, n, current.data(), first_row);
  for (size_t i = impl_->transform_count(); i-- > 0;) {
    previous.resize(n * impl_->stages[i]->dim_in());
    impl_->transform(i).reconstruct(current.data(), n, i == 0 ? x : previous.data());
    if (i) std::swap(current, previous);
  }
}

std::unique_ptr<CodeScorer> Codec::scorer(const float* queries, size_t nq, Metric metric) const {
  require_trained(*this);
  const Quantizer& quantizer = impl_->quantizer();
  std::vector<float> transformed;
  if (impl_->transform_count()) {
    transformed = transform_queries(queries, nq, metric);
    queries = transformed.data();
  }
  return quantizer.scorer(queries, nq, metric);
}

std::unique_ptr<CodeScorer> Codec::upper_bound_scorer(const float* queries, size_t nq, Metric metric) const {
  require_trained(*this);
  if (impl_->transform_count() == 0) return impl_->quantizer().upper_bound_scorer(queries, nq, metric);
  std::vector<float> transformed = transform_queries(queries, nq, metric);
  return impl_->quantizer().upper_bound_scorer(transformed.data(), nq, metric);
}

std::vector<float> Codec::transform_queries(const float* queries, size_t nq, Metric metric) const {
  require_trained(*this);
  std::vector<float> a, b;
  const float* out = impl_->transformed(queries, nq, a, b);
  const size_t d = impl_->quantizer().dim_in();
  std::vector<float> result(out, out + nq * d);
  // Scorers expect unit-length cos queries; a transform (whiten, pca) changes the length.
  if (metric == Metric::cos) normalize_rows(result.data(), nq, d);
  return result;
}

const Quantizer& Codec::quantizer() const { return impl_->quantizer(); }

void Quantizer::bind_keys(KeyLookup) {}
bool Quantizer::vector_for_key(std::string_view, float*) const { return false; }

void Codec::bind_keys(KeyLookup keys) { static_cast<Quantizer&>(*impl_->stages.back()).bind_keys(std::move(keys)); }

std::optional<std::vector<float>> Codec::vector_for_key(std::string_view key) const {
  require_trained(*this);
  std::vector<float> current(impl_->quantizer().dim_in()), previous;
  if (!impl_->quantizer().vector_for_key(key, current.data())) return std::nullopt;
  for (size_t i = impl_->transform_count(); i-- > 0;) {
    previous.resize(impl_->stages[i]->dim_in());
    impl_->transform(i).reconstruct(current.data(), 1, previous.data());
    std::swap(current, previous);
  }
  return current;
}

// Layout: u32 stage count, then per stage: spec (u32 length + bytes), u64 length + parameters.
std::vector<uint8_t> Codec::serialize() const {
  require_trained(*this);
  ByteWriter w;
  w.put<uint32_t>(static_cast<uint32_t>(impl_->stages.size()));
  for (const auto& s : impl_->stages) {
    w.put_string(s->spec());
    std::vector<uint8_t> params = s->serialize();
    w.put<uint64_t>(params.size());
    w.put_bytes(params.data(), params.size());
  }
  return w.take();
}

Codec Codec::load(const uint8_t* data, size_t size) {
  ByteReader r(data, size, "codec parameters (CODC)");
  uint32_t count = r.get<uint32_t>();
  if (count == 0 || count > 64) r.fail("stage count " + std::to_string(count) + " is out of range 1..64");
  Codec codec;
  std::string whole;
  for (uint32_t i = 0; i < count; ++i) {
    std::string spec = r.get_string(4096);
    whole += (i ? "/" : "") + spec;
    auto stages = [&] {
      try {
        return parse_spec(spec);
      } catch (const SpecError& e) {
        throw FormatError(std::string("codec parameters (CODC): ") + e.what(), "CODC", r.position());
      }
    }();
    if (stages.size() != 1) r.fail("stage " + std::to_string(i + 1) + " spec '" + spec + "' is not a single stage");
    if (!find_codec(stages[0].name))
      r.fail("codec '" + stages[0].name + "' is not known to this vecpack (the file may come from a newer version)");
    std::unique_ptr<Stage> stage;
    try {
      stage = create_stage(stages[0], i + 1, spec);
    } catch (const SpecError& e) {
      throw FormatError(std::string("codec parameters (CODC): ") + e.what(), "CODC", r.position());
    }
    uint64_t length = r.get<uint64_t>();
    if (length > r.remaining()) r.fail("parameters of stage '" + spec + "' overrun the section");
    const uint8_t* params = r.take(length);
    stage->load(params, length);
    if (i > 0 && stage->dim_in() != codec.impl_->stages.back()->dim_out())
      r.fail("stage '" + spec + "' expects dimension " + std::to_string(stage->dim_in()) + " but receives " +
             std::to_string(codec.impl_->stages.back()->dim_out()));
    codec.impl_->stages.push_back(std::move(stage));
  }
  r.expect_end();
  try {
    check_chain(codec.impl_->stages, whole);
  } catch (const SpecError& e) {
    throw FormatError(std::string("codec parameters (CODC): ") + e.what(), "CODC", 0);
  }
  return codec;
}

size_t Codec::stage_count() const { return impl_->stages.size(); }
const Stage& Codec::stage(size_t i) const { return *impl_->stages.at(i); }

}  // namespace vecpack
