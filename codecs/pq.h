// pq: product quantization. The pieces opq trains with (the sub-vector split, codebooks,
// encoding) are declared here too, so that both codecs split and quantize identically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kmeans.h"
#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kPqCodec;

// m when a spec leaves it at 0: one sub-quantizer per 4 dimensions.
size_t pq_default_m(size_t d);

// The m a pq stage was given in its spec (0: chosen in training), or 0 for any other stage.
size_t pq_requested_m(const Stage& stage);

// The split shared by pq and opq: m contiguous sub-vectors whose sizes differ by at most one,
// the first d % m one longer. Returns the m + 1 offsets of their starts and of the end.
std::vector<size_t> pq_split(size_t d, size_t m);

// Code packing: code j of a row occupies bits [j * nbits, (j + 1) * nbits) of the row read as
// a little-endian bit string (bit b is bit b % 8 of byte b / 8); the unused high bits of the
// last byte are zero. Code j of the row is labels[j * label_stride].
size_t pq_code_size(size_t m, unsigned nbits);
void pq_pack(const uint32_t* labels, size_t label_stride, size_t m, unsigned nbits, uint8_t* code);
void pq_unpack(const uint8_t* code, size_t m, unsigned nbits, uint32_t* labels);

// The codebooks of a product quantizer: what pq stores, and what opq retrains every iteration.
class PqCodebooks {
 public:
  struct TrainSettings {
    size_t kmeans_iterations = 25;
    uint64_t seed = 1234;
    unsigned threads = 0;
    Progress* progress = nullptr;           // one step per sub-quantizer; may be null
    const PqCodebooks* warm_start = nullptr;  // same shape: start k-means from its centroids
  };

  PqCodebooks() = default;
  // centroids: for each sub-quantizer j in order, 2^nbits centroids of sub_dim(j) floats.
  PqCodebooks(size_t d, size_t m, unsigned nbits, std::vector<float> centroids);

  // k-means per sub-quantizer on n rows of dimension d. With fewer rows than 2^nbits the rows
  // themselves become the centroids (the unused entries repeat centroid 0 and are never chosen).
  static PqCodebooks train(const float* x, size_t n, size_t d, size_t m, unsigned nbits, const TrainSettings& settings);

  bool empty() const { return m_ == 0; }
  size_t dim() const { return d_; }
  size_t m() const { return m_; }
  unsigned nbits() const { return nbits_; }
  size_t ksub() const { return size_t{1} << nbits_; }
  size_t code_size() const { return pq_code_size(m_, nbits_); }
  size_t offset(size_t j) const { return offsets_[j]; }
  size_t sub_dim(size_t j) const { return offsets_[j + 1] - offsets_[j]; }
  // ksub x sub_dim(j) floats.
  const float* centroids(size_t j) const { return centroids_.data() + offsets_[j] * ksub(); }
  const std::vector<float>& all_centroids() const { return centroids_; }
  // m x ksub: |centroid|^2 of every sub-quantizer's centroids (a decoded row's squared norm is a
  // sum of m of these).
  const std::vector<float>& squared_norms() const { return squared_norms_; }

  // labels: n x m, the nearest centroid of each sub-vector. Single-threaded.
  void assign(const float* x, size_t n, uint32_t* labels) const;
  void encode(const float* x, size_t n, uint8_t* codes) const;
  // Score-aware encoding (ScaNN's anisotropic loss): the codes minimise |r|^2 + (eta - 1)(r.u)^2,
  // r the residual and u the row's direction, so that with eta > 1 the error that moves a row's
  // inner products with queries near its own direction costs more. Starts from the nearest
  // centroids, then runs rounds of coordinate descent over the sub-quantizers.
  void encode_anisotropic(const float* x, size_t n, float eta, uint8_t* codes) const;
  void decode(const uint8_t* codes, size_t n, float* x) const;
  void decode_labels(const uint32_t* labels, size_t n, float* x) const;

 private:
  size_t d_ = 0, m_ = 0;
  unsigned nbits_ = 0;
  std::vector<size_t> offsets_;
  std::vector<float> centroids_;
  std::vector<CentroidTable> tables_;  // derived: one per sub-quantizer, for encoding
  std::vector<float> squared_norms_;   // derived: m x ksub, |centroid|^2
};

}  // namespace vecpack
