// Every codec vecpack knows, as data. Adding a codec: its file pair in codecs/ plus one line here.
#include "binary.h"
#include "float_codecs.h"
#include "hash.h"
#include "int8.h"
#include "itq.h"
#include "mixdim.h"
#include "opq.h"
#include "pq.h"
#include "qr.h"
#include "rabitq.h"
#include "rbin.h"
#include "rq.h"
#include "subword.h"
#include "transforms.h"
#include "vecpack/registry.h"

namespace vecpack {

const std::vector<const CodecDescriptor*>& codec_list() {
  static const std::vector<const CodecDescriptor*> list = {
      &kF32Codec,
      &kF16Codec,
      &kBf16Codec,
      &kInt8Codec,
      &kPqCodec,
      &kOpqCodec,
      &kRqCodec,
      &kBinaryCodec,
      &kRbinCodec,
      &kRabitqCodec,
      &kHashCodec,
      &kQrCodec,
      &kMixdimCodec,
      &kSubwordCodec,
      &kWhitenTransform,
      &kPcaTransform,
      &kRotateTransform,
      &kL2NormTransform,
      &kMatryoshkaTransform,
      &kItqTransform,
  };
  return list;
}

}  // namespace vecpack
