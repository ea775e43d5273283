# Sanitizer and fuzzing configurations (docs/RELIABILITY.md). Included before any target is
# defined, so the flags apply to the library, the CLI and the tests alike.
#   VECPACK_SANITIZE  AddressSanitizer + UndefinedBehaviorSanitizer, any compiler that has them.
#   VECPACK_FUZZ      the fuzz targets in tests/fuzz/ with libFuzzer, ASan and UBSan (clang only);
#                     with VECPACK_FUZZ_ASAN=OFF UBSan only: two to three times the executions
#                     per second for long runs, whose corpus is then replayed under ASan.
#   VECPACK_TSAN      ThreadSanitizer (clang): the search engine's workers, the thread pool,
#                     concurrent readers and writers.
# Neither builds the Python module: an instrumented extension would need the sanitizer runtime
# preloaded into the interpreter.
# float-cast-overflow is part of clang's "undefined" but not GCC's: named so that both check it.
set(VECPACK_SANITIZER_FLAGS -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer
  -fno-sanitize-recover=undefined,float-cast-overflow)
if(VECPACK_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "VECPACK_FUZZ needs clang for libFuzzer (-fsanitize=fuzzer), but the C++ compiler is "
      "${CMAKE_CXX_COMPILER_ID} (${CMAKE_CXX_COMPILER}). Configure a separate build folder with "
      "-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14, as tools/fuzz.sh does.")
  endif()
  # fuzzer-no-link: coverage instrumentation everywhere; only the fuzz_* executables link libFuzzer.
  if(VECPACK_FUZZ_ASAN)
    add_compile_options(-fsanitize=fuzzer-no-link ${VECPACK_SANITIZER_FLAGS})
    add_link_options(-fsanitize=address,undefined,float-cast-overflow)
  else()
    add_compile_options(-fsanitize=fuzzer-no-link -fsanitize=undefined,float-cast-overflow
      -fno-sanitize-recover=undefined,float-cast-overflow)
    add_link_options(-fsanitize=undefined,float-cast-overflow)
  endif()
elseif(VECPACK_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(VECPACK_SANITIZE)
  add_compile_options(${VECPACK_SANITIZER_FLAGS})
  add_link_options(-fsanitize=address,undefined,float-cast-overflow)
endif()
if((VECPACK_SANITIZE OR VECPACK_FUZZ OR VECPACK_TSAN) AND VECPACK_BUILD_PYTHON)
  message(WARNING "VECPACK_SANITIZE/VECPACK_FUZZ/VECPACK_TSAN: the Python module is not built in this configuration")
  set(VECPACK_BUILD_PYTHON OFF)
endif()
