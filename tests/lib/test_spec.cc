#include <doctest/doctest.h>

#include "vecpack/errors.h"
#include "vecpack/registry.h"

using namespace vecpack;

namespace {
// A descriptor with every parameter type, to test validation independently of real codecs.
std::unique_ptr<Stage> no_stage(const CodecArgs&) { return nullptr; }
const CodecDescriptor kTestCodec{"testpq",
                                 "test",
                                 StageKind::quantizer,
                                 0,
                                 {{"m", ParamType::integer, "8", 1, 1024, nullptr, "sub-quantizers"},
                                  {"nbits", ParamType::integer, "8", 4, 16, nullptr, "bits"},
                                  {"eps", ParamType::real, "0.5", 0, 1, nullptr, "epsilon"},
                                  {"op", ParamType::choice, "mult", 0, 0, "mult|add|concat", "op"},
                                  {"weights", ParamType::flag, "on", 0, 0, nullptr, "weights"}},
                                 &no_stage};

CodecArgs validate(std::string_view spec) {
  auto stages = parse_spec(spec);
  return validate_args(kTestCodec, stages.at(0), 1, spec);
}
}  // namespace

TEST_CASE("spec: stages, named and positional arguments") {
  auto stages = parse_spec("whiten:k=64/pq:m=16,nbits=4");
  REQUIRE(stages.size() == 2);
  CHECK(stages[0].name == "whiten");
  CHECK(stages[0].args == std::vector<std::pair<std::string, std::string>>{{"k", "64"}});
  CHECK(stages[1].name == "pq");
  CHECK(stages[1].args.size() == 2);
  CHECK(parse_spec(" int8 ")[0].name == "int8");

  CodecArgs a = validate("testpq:32,nbits=4,op=add,weights=off");
  CHECK(a.integer("m") == 32);
  CHECK(a.integer("nbits") == 4);
  CHECK(a.real("eps") == 0.5);  // default filled in
  CHECK(a.text("op") == "add");
  CHECK_FALSE(a.flag("weights"));
}

TEST_CASE("spec: errors name the stage, the argument, the range and the nearest codec") {
  CHECK_THROWS_WITH_AS(parse_spec(""), doctest::Contains("empty"), SpecError);
  CHECK_THROWS_WITH_AS(parse_spec("f16//int8"), doctest::Contains("stage 2: missing codec name"), SpecError);
  CHECK_THROWS_WITH_AS(parse_spec("pq:m="), doctest::Contains("empty argument"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:m=0"), doctest::Contains("stage 1 'testpq': m=0 is out of range (1..1024)"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:nbits=17"), doctest::Contains("nbits=17 is out of range (4..16)"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:m=x"), doctest::Contains("m=x is not an integer"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:m=2.5"), doctest::Contains("not an integer"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:eps=2"), doctest::Contains("eps=2 is out of range (0..1)"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:op=mul"), doctest::Contains("op=mul is not one of mult|add|concat"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:weights=maybe"), doctest::Contains("not on or off"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:bits=3"), doctest::Contains("unknown argument 'bits' (testpq takes: m, nbits, eps, op, weights)"),
                       SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:m=1,m=2"), doctest::Contains("given twice"), SpecError);
  CHECK_THROWS_WITH_AS(validate("testpq:8,8,0.1,add,on,extra"), doctest::Contains("too many arguments"), SpecError);
}

TEST_CASE("spec: unknown codecs and misplaced stages") {
  CHECK_THROWS_WITH_AS(Codec("int9"), doctest::Contains("stage 1 'int9' is not a codec; did you mean 'int8'?"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("f16/bf61"), doctest::Contains("stage 2 'bf61' is not a codec; did you mean 'bf16'?"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("f16/int8"), doctest::Contains("stage 1 'f16' is a quantizer; only the last stage may be one"),
                       SpecError);
  CHECK_THROWS_WITH_AS(Codec("int8:bits=4"), doctest::Contains("unknown argument 'bits' (int8 takes no arguments)"), SpecError);
}

TEST_CASE("registry: every codec has a unique name, a description, and builds from its own name") {
  const auto& list = codec_list();
  REQUIRE(list.size() >= 4);
  for (const CodecDescriptor* d : list) {
    CAPTURE(std::string(d->name));
    CHECK(find_codec(d->name) == d);
    CHECK(std::string(d->description).size() > 10);
    if (d->kind != StageKind::quantizer) continue;
    std::string spec, error;
    try {
      spec = Codec(d->name).spec();
    } catch (const SpecError& e) {  // or says which argument it needs (mixdim: budget)
      error = e.what();
    }
    if (error.empty()) CHECK(spec == std::string(d->name));
    else CHECK(error.find("is required") != std::string::npos);
  }
  CHECK(find_codec("nope") == nullptr);
}
