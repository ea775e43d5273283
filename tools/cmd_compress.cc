// vecpack compress IN -o OUT --codec SPEC: train a codec on a sample and encode every row.
#include <chrono>
#include <iomanip>
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {

void add_compress(CLI::App& app, Globals& globals) {
  struct Options {
    InputOptions input;
    std::string output, codec = "int8", subword_codec, rerank_codec;
    size_t train_size = 100000;
    unsigned threads = 0;
    uint64_t seed = 1234;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("compress", "Compress a table with a codec spec into a .vecpack file");
  add_input_options(cmd, o->input, "Input table (.vecpack, word2vec, GloVe, HDF5 ann-benchmarks: its train set)");
  cmd->add_option("-o,--output", o->output, "Output .vecpack file")->required();
  cmd->add_option("-c,--codec", o->codec, "Codec spec, e.g. int8, f16, 'opq:m=25/pq:m=25' ('vecpack codecs' lists them)")
      ->capture_default_str();
  cmd->add_option("--subword-codec", o->subword_codec,
                  "Codec spec of the n-gram pool of a table with subwords (default: the table's codec)");
  cmd->add_option("--rerank", o->rerank_codec,
                  "Also store every row with this codec (e.g. int8, f16) to rescore shortlists: search --rerank N");
  cmd->add_option("--train-size", o->train_size, "Rows sampled for training (0: all)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (0: one per core)");
  cmd->add_option("--seed", o->seed, "Seed of the training sample and of training")->capture_default_str();
  cmd->callback([o, &globals] {
    // Validate the spec before reading a large input.
    Codec check(o->codec);
    if (!o->subword_codec.empty()) Codec check_subwords(o->subword_codec);
    if (!o->rerank_codec.empty()) Codec check_rerank(o->rerank_codec);
    auto progress = make_progress(globals);
    Table input = read_input(o->input, progress.get());
    CompressOptions options;
    options.train_size = o->train_size;
    options.threads = o->threads;
    options.seed = o->seed;
    options.allow_nan = o->input.allow_nan;
    options.progress = progress.get();
    options.subword_spec = o->subword_codec;
    options.rerank_spec = o->rerank_codec;
    auto start = std::chrono::steady_clock::now();
    Table out = input.compress(o->codec, options);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.save(o->output);
    if (!globals.quiet) {
      TableInfo info = Table::open(o->output).info();
      uint64_t raw = uint64_t(info.rows) * info.dim * 4;
      std::cerr << "wrote " << o->output << ": " << info.rows << " rows x " << info.dim << ", codec " << info.spec << ", "
                << human_bytes(info.file_bytes) << " (f32 rows: " << human_bytes(raw) << "), encoded in " << std::fixed << std::setprecision(2) << seconds << " s\n";
    }
  });
}

}  // namespace vecpack::cli
