// vecpack: the command-line tool. Each subcommand lives in its own cmd_*.cc file.
#include <iostream>

#include "cli_common.h"

using namespace vecpack;
using namespace vecpack::cli;

// The most specific error type decides the exit code.
static int exit_code_for(const Error& e) {
  if (dynamic_cast<const FormatError*>(&e)) return kBadFormat;
  if (dynamic_cast<const ParseError*>(&e)) return kBadInput;
  if (dynamic_cast<const SpecError*>(&e)) return kBadSpec;
  if (dynamic_cast<const IoError*>(&e)) return kIoFailure;
  if (dynamic_cast<const NotFoundError*>(&e)) return kNotFound;
  if (dynamic_cast<const LockedError*>(&e)) return kLocked;
  if (dynamic_cast<const MemoryLimitError*>(&e)) return kTooLarge;
  return kFailure;
}

int main(int argc, char** argv) {
  CLI::App app{"vecpack: store, compress and search embedding tables"};
  app.require_subcommand(1);
  Globals globals;
  app.add_flag("-q,--quiet", globals.quiet, "No progress output");
  app.set_version_flag("--version", std::string("vecpack ") + version() + " (kernels: " + kernel_isa() + ")");
  add_convert(app, globals);
  add_compress(app, globals);
  add_inspect(app, globals);
  add_get(app, globals);
  add_search(app, globals);
  add_verify(app, globals);
  add_codecs(app, globals);
  add_formats(app, globals);
  add_eval(app, globals);
  add_bench(app, globals);
  add_tune(app, globals);
  add_change_commands(app, globals);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kOk : kUsage;
  } catch (const Exit& e) {
    return e.code;
  } catch (const Error& e) {
    std::cerr << "vecpack: error: " << e.what() << "\n";
    return exit_code_for(e);
  } catch (const std::bad_alloc&) {
    std::cerr << "vecpack: error: out of memory\n";
    return kFailure;
  } catch (const std::exception& e) {
    std::cerr << "vecpack: error: " << e.what() << "\n";
    return kFailure;
  }
  return kOk;
}
