// The codec registry and spec-string parsing.
//
// Spec grammar:  spec := stage ('/' stage)*    stage := name [':' arg (',' arg)*]
//                arg  := key '=' value | value  (positional values fill parameters in order)
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vecpack/codec.h"

namespace vecpack {

// Every codec, in the order of codecs/registry.cc.
const std::vector<const CodecDescriptor*>& codec_list();
// nullptr when no codec has that name.
const CodecDescriptor* find_codec(std::string_view name);
// The names of the capability flags set in caps ("exact_decode", "needs_keys", ...), in bit order:
// what `vecpack codecs` and vecpack.codecs() list.
std::vector<std::string> capability_names(uint32_t caps);

struct StageSpec {
  std::string name;
  std::vector<std::pair<std::string, std::string>> args;  // key empty for positional
};

// Splits a spec into stages (syntax only). Throws SpecError naming the stage.
std::vector<StageSpec> parse_spec(std::string_view spec);
// Validates one stage against the registry and creates it untrained. Throws SpecError naming
// the stage, the argument, the allowed range and the nearest valid codec name.
std::unique_ptr<Stage> create_stage(const StageSpec& stage, size_t index, std::string_view whole_spec);
// Checks a stage's arguments against a descriptor's parameters and fills in defaults.
CodecArgs validate_args(const CodecDescriptor& descriptor, const StageSpec& stage, size_t index, std::string_view whole_spec);

}  // namespace vecpack
