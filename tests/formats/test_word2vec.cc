#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <tuple>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"
#include "formats/text_io.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// Values that a careless float formatter would not round-trip.
std::vector<float> awkward_values() {
  return {0.1f, -0.0f, 1.0f / 3.0f, FLT_MAX, -FLT_MIN, std::numeric_limits<float>::denorm_min(), 1e10f,
          -123456.789f, 3.0e-39f, 0.0f, 1.0f, -2.5e-7f};
}

Table keyed_table(size_t n, size_t d, uint64_t seed = 7) {
  std::vector<float> rows = test::clustered_rows(n, d, 10, seed);
  std::vector<float> awkward = awkward_values();
  for (size_t i = 0; i < rows.size() && i < awkward.size(); ++i) rows[i] = awkward[i];
  std::vector<std::string> keys;
  for (size_t i = 0; i < n; ++i) keys.push_back(i % 3 == 0 ? "mot" + std::to_string(i) + "\xC3\xA9" : "w" + std::to_string(i));
  return Table::from_rows(std::move(rows), d, std::move(keys));
}

std::string binary_row(std::string_view word, const std::vector<float>& values) {
  std::string row(word);
  row += ' ';
  row.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return row;
}

// Runs f, which must throw ParseError, and returns the error.
// Collects what is written to stderr while alive.
class StderrCapture {
 public:
  explicit StderrCapture(std::string path) : path_(std::move(path)) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    return test::file_text(path_);
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::string path_;
  int saved_ = -1;
};

// Fails on the first progress report: simulates a write that dies midway.
class FailingProgress : public Progress {
 public:
  void begin(std::string_view, uint64_t) override {}
  void advance(uint64_t) override { throw std::runtime_error("disk on fire"); }
  void end() override {}
};

class CountingProgress : public Progress {
 public:
  void begin(std::string_view, uint64_t total) override { totals.push_back(total); }
  void advance(uint64_t done) override { last = done; }
  void end() override { ++ends; }
  std::vector<uint64_t> totals;
  uint64_t last = 0;
  int ends = 0;
};

}  // namespace

TEST_CASE("word2vec: text and binary round trips are bit exact, plain and gzip") {
  test::TempDir dir;
  Table table = keyed_table(300, 12);
  for (const char* name : {"t.vec", "t.vec.gz", "t.bin", "t.bin.gz"}) {
    CAPTURE(name);
    std::string path = dir.file(name);
    write_table(table, path);
    Table back = read_table(path);
    test::check_same_table(table, back);
    const bool binary = test::contains(name, ".bin");
    CHECK(back.meta().source_format == (binary ? "word2vec-bin" : "word2vec"));
    CHECK(back.meta().source_path == path);
  }
  // The gzip files really are compressed, and the text header is "count dim".
  CHECK(test::read_bytes(dir.file("t.vec.gz"))[0] == 0x1f);
  CHECK(test::file_text(dir.file("t.vec")).rfind("300 12\n", 0) == 0);
  // Binary as the C tool writes it: a '\n' after each vector.
  std::string bin = test::file_text(dir.file("t.bin"));
  size_t expected_size = std::string("300 12\n").size();
  for (size_t i = 0; i < 300; ++i) expected_size += table.key(i).size() + 1 + 12 * sizeof(float) + 1;
  CHECK(bin.size() == expected_size);
  CHECK(bin.back() == '\n');
}

TEST_CASE("word2vec: files larger than the read buffer; gzip found by content, damage reported") {
  test::TempDir dir;
  Table table = keyed_table(3000, 100, 9);
  for (const char* name : {"big.bin", "big.vec.gz"}) {
    CAPTURE(name);
    write_table(table, dir.file(name));
    test::check_same_table(table, read_table(dir.file(name)));
  }
  // Compressed content under a plain name is still read (and sniffed) as gzip.
  std::filesystem::copy_file(dir.file("big.vec.gz"), dir.file("disguised.vec"));
  CHECK(std::string(detect_format(dir.file("disguised.vec")).name) == "word2vec");
  test::check_same_table(table, read_table(dir.file("disguised.vec")));
  // A cut gzip stream is an error, not a short table.
  auto bytes = test::read_bytes(dir.file("big.vec.gz"));
  bytes.resize(bytes.size() / 2);
  test::write_bytes(dir.file("cut.vec.gz"), bytes);
  ParseError e = test::caught<ParseError>([&] { read_table(dir.file("cut.vec.gz")); });
  CHECK(test::contains(e.what(), "cut.vec.gz"));
  CHECK(test::contains(e.what(), "damaged or truncated gzip data"));
}

TEST_CASE("word2vec: format names, extensions and content sniffing") {
  test::TempDir dir;
  Table table = keyed_table(20, 4);
  write_table(table, dir.file("a.txt"), "word2vec");
  write_table(table, dir.file("b.txt"), "word2vec-bin");
  write_table(table, dir.file("c.txt.gz"), "word2vec");
  CHECK(std::string(detect_format(dir.file("a.txt")).name) == "word2vec");
  CHECK(std::string(detect_format(dir.file("b.txt")).name) == "word2vec-bin");
  CHECK(std::string(detect_format(dir.file("c.txt.gz")).name) == "word2vec");
  // Extensions decide for files that do not exist yet; a trailing .gz is looked through.
  CHECK(std::string(detect_format(dir.file("new.bin")).name) == "word2vec-bin");
  CHECK(std::string(detect_format(dir.file("new.vec.gz")).name) == "word2vec");
  CHECK(std::string(detect_format(dir.file("new.txt"), "word2vec").name) == "word2vec");
  CHECK(find_format("WORD2VEC") == find_format("word2vec"));
  CHECK(find_format("nope") == nullptr);
  std::string unknown = test::caught<Error>([&] { detect_format(dir.file("new.xyz")); }).what();
  for (const FormatDescriptor* format : format_list()) CHECK(test::contains(unknown, std::string(" ") + format->name));
  CHECK_THROWS_WITH_AS(read_table(dir.file("a.txt"), "nope"), doctest::Contains("unknown format 'nope'"), Error);
  // A header-only file is text.
  test::write_text(dir.file("empty.txt"), "0 5\n");
  Table empty = read_table(dir.file("empty.txt"));
  CHECK(empty.size() == 0);
  CHECK(empty.dim() == 5);
}

TEST_CASE("word2vec: binary with and without the newline after each vector") {
  test::TempDir dir;
  std::vector<float> a = {1.5f, -2.0f, 0.25f}, b = {3.0f, 4.0f, -0.0f}, c = {1e-3f, 7.0f, 8.0f};
  // gensim: no newline; the C tool: a newline; also a stray newline before a word.
  std::string gensim = "3 3\n" + binary_row("alpha", a) + binary_row("beta", b) + binary_row("gamma", c);
  std::string c_tool = "3 3\n" + binary_row("alpha", a) + "\n" + binary_row("beta", b) + "\n\n" + binary_row("gamma", c) + "\n";
  for (const std::string& bytes : {gensim, c_tool}) {
    std::string path = dir.file("v.bin");
    test::write_text(path, bytes);
    Table t = read_table(path);
    REQUIRE(t.size() == 3);
    CHECK(t.key(0) == "alpha");
    CHECK(t.key(1) == "beta");
    CHECK(t.key(2) == "gamma");
    CHECK(t.row(0) == a);
    CHECK(t.row(1) == b);
    CHECK(t.row(2) == c);
  }
}

TEST_CASE("word2vec: CRLF line ends, a byte order mark and trailing blanks are tolerated") {
  test::TempDir dir;
  std::string path = dir.file("crlf.txt");
  test::write_text(path, "\xEF\xBB\xBF" "2 3\r\nthe 0.1 0.2 0.3 \r\n\xC3\xA9t\xC3\xA9 -1 2e-3 +4\r\n");
  Table t = read_table(path, "word2vec");
  REQUIRE(t.size() == 2);
  CHECK(t.key(0) == "the");
  CHECK(t.key(1) == "\xC3\xA9t\xC3\xA9");
  CHECK(t.row(0) == std::vector<float>{0.1f, 0.2f, 0.3f});
  CHECK(t.row(1) == std::vector<float>{-1.0f, 2e-3f, 4.0f});
  // Sniffing sees past the byte order mark too, and a final line without '\n' is a row.
  test::write_text(path, "\xEF\xBB\xBF" "1 2\nx 1 2");
  CHECK(std::string(detect_format(path).name) == "word2vec");
  CHECK(read_table(path).row(0) == std::vector<float>{1.0f, 2.0f});
  // Binary header with CRLF.
  std::string bin = dir.file("crlf.bin");
  test::write_text(bin, "1 2\r\n" + binary_row("k", {5.0f, 6.0f}));
  CHECK(read_table(bin, "word2vec-bin").row(0) == std::vector<float>{5.0f, 6.0f});
}

TEST_CASE("word2vec: numbers beyond float range round as strtof does") {
  test::TempDir dir;
  std::string path = dir.file("range.vec");
  test::write_text(path, "1 5\nw 1e-50 -1e-400 +2.5 1e-45 .5\n");
  std::vector<float> row = read_table(path).row(0);
  CHECK(row[0] == 0.0f);
  CHECK((row[1] == 0.0f && std::signbit(row[1])));
  CHECK(row[2] == 2.5f);
  CHECK(row[3] == std::numeric_limits<float>::denorm_min());
  CHECK(row[4] == 0.5f);
  test::write_text(path, "1 2\nw 1 1e39\n");
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path); }).what(), "range.vec:2:5: infinity in value 2"));
  test::write_text(path, "1 2\nw 1 -1e400\n");
  ReadOptions options;
  options.allow_nan = true;
  CHECK(read_table(path, {}, options).row(0)[1] == -std::numeric_limits<float>::infinity());
  for (const char* bad : {"1 2\nw 1 ++1\n", "1 2\nw 1 +-1\n", "1 2\nw 1 1e\n", "1 2\nw 1 0x10\n", "1 2\nw 1 1,5\n"}) {
    CAPTURE(bad);
    test::write_text(path, bad);
    CHECK(test::contains(test::caught<ParseError>([&] { read_table(path); }).what(), "is not a number (value 2 of 2)"));
  }
}

TEST_CASE("word2vec: limit reads only the first rows") {
  test::TempDir dir;
  Table table = keyed_table(50, 6);
  for (const char* name : {"l.vec", "l.bin"}) {
    std::string path = dir.file(name);
    write_table(table, path);
    ReadOptions options;
    options.limit = 7;
    Table t = read_table(path, {}, options);
    REQUIRE(t.size() == 7);
    CHECK(t.key(6) == table.key(6));
    CHECK(t.row(6) == table.row(6));
    options.limit = 500;  // more than the file has
    CHECK(read_table(path, {}, options).size() == 50);
  }
  // The header may promise more rows than the limit reads.
  test::write_text(dir.file("big.vec"), "1000 2\na 1 2\nb 3 4\nc 5 6\n");
  ReadOptions options;
  options.limit = 2;
  CHECK(read_table(dir.file("big.vec"), {}, options).size() == 2);
}

TEST_CASE("word2vec: header errors name the file and line 1") {
  test::TempDir dir;
  std::string path = dir.file("h.vec");
  struct Case {
    std::string text, message;
  };
  for (const Case& c : {Case{"cat 0.1 0.2\n", "expected a header of two integers 'count dim', found 'cat 0.1 0.2'"},
                        Case{"3\n", "expected a header of two integers"}, Case{"3 4 5\n", "expected a header of two integers"},
                        Case{"", "the file is empty"}, Case{"2 0\n", "dimension must be positive, found 0"},
                        Case{"-4 3\n", "row count is negative (-4)"}, Case{"3 x\n", "expected a header of two integers"}}) {
    CAPTURE(c.text);
    test::write_text(path, c.text);
    ParseError e = test::caught<ParseError>([&] { read_table(path, "word2vec"); });
    CHECK(test::contains(e.what(), c.message));
    CHECK(test::contains(e.what(), "h.vec:"));
    CHECK(e.file() == path);
    CHECK(e.line() == 1);
  }
}

TEST_CASE("word2vec: row errors give file, line, column and a clear message") {
  test::TempDir dir;
  std::string path = dir.file("rows.vec");

  test::write_text(path, "3 3\na 1 2 3\nb 1 2\nc 1 2 3\n");
  ParseError few = test::caught<ParseError>([&] { read_table(path, "word2vec"); });
  CHECK(test::contains(few.what(), "rows.vec:3:"));
  CHECK(test::contains(few.what(), "expected 3 values after the word, found 2"));
  CHECK(few.line() == 3);

  test::write_text(path, "3 3\na 1 2 3\nb 1 2 3\nc 1 2 3 4 5\n");
  ParseError many = test::caught<ParseError>([&] { read_table(path, "word2vec"); });
  CHECK(test::contains(many.what(), "rows.vec:4:"));
  CHECK(test::contains(many.what(), "expected 3 values after the word, found 5"));
  CHECK(many.column() == 9);

  test::write_text(path, "2 3\na 1 2 3\nb 1 2.5x 3\n");
  ParseError bad = test::caught<ParseError>([&] { read_table(path, "word2vec"); });
  CHECK(test::contains(bad.what(), "rows.vec:3:5:"));
  CHECK(test::contains(bad.what(), "'2.5x' is not a number (value 2 of 3)"));

  test::write_text(path, "3 2\na 1 2\n\nb 3 4\n");
  ParseError short_file = test::caught<ParseError>([&] { read_table(path, "word2vec"); });
  CHECK(test::contains(short_file.what(), "rows.vec:"));
  CHECK(test::contains(short_file.what(), "header says 3 rows, file has 2"));

  test::write_text(path, "1 2\na 1 2\nb 3 4\nc 5 6\n");
  ParseError long_file = test::caught<ParseError>([&] { read_table(path, "word2vec"); });
  CHECK(test::contains(long_file.what(), "rows.vec:3:"));
  CHECK(test::contains(long_file.what(), "header says 1 rows, file has 3"));

  test::write_text(path, "1 2\n 1 2\n");
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path, "word2vec"); }).what(), "expected a word first"));

  test::write_text(path, "1 2\nbad\xFF" "word 1 2\n");
  ParseError utf8 = test::caught<ParseError>([&] { read_table(path, "word2vec"); });
  CHECK(test::contains(utf8.what(), "rows.vec:2:4:"));
  CHECK(test::contains(utf8.what(), "not valid UTF-8"));
}

TEST_CASE("word2vec: NaN and infinity are rejected unless allow_nan") {
  test::TempDir dir;
  std::string path = dir.file("nan.vec");
  test::write_text(path, "3 2\na 1 2\nb 3 nan\nc -inf 1\n");
  ParseError e = test::caught<ParseError>([&] { read_table(path); });
  CHECK(test::contains(e.what(), "nan.vec:3:5:"));
  CHECK(test::contains(e.what(), "NaN in value 2 of row 2 (word 'b')"));
  ReadOptions options;
  options.allow_nan = true;
  Table t = read_table(path, {}, options);
  CHECK(std::isnan(t.row(1)[1]));
  CHECK(std::isinf(t.row(2)[0]));

  std::string bin = dir.file("nan.bin");
  const float inf = std::numeric_limits<float>::infinity();
  test::write_text(bin, "2 2\n" + binary_row("a", {1.0f, 2.0f}) + binary_row("b", {inf, 2.0f}));
  ParseError be = test::caught<ParseError>([&] { read_table(bin); });
  CHECK(test::contains(be.what(), "nan.bin:"));
  CHECK(test::contains(be.what(), "infinity in value 1 of row 2 (word 'b')"));
  CHECK(test::contains(be.what(), "byte offset"));
  CHECK(std::isinf(read_table(bin, {}, options).row(1)[0]));
}

TEST_CASE("word2vec: a truncated binary file names the row, the bytes missing and the offset") {
  test::TempDir dir;
  std::string path = dir.file("cut.bin");
  std::string whole = "3 100\n" + binary_row("one", std::vector<float>(100, 1.0f)) + "\n" +
                      binary_row("two", std::vector<float>(100, 2.0f)) + "\n" + binary_row("three", std::vector<float>(100, 3.0f));
  const size_t third_vector = whole.size() - 400;
  test::write_text(path, whole.substr(0, third_vector + 123));
  ParseError e = test::caught<ParseError>([&] { read_table(path); });
  CHECK(test::contains(e.what(), "cut.bin"));
  CHECK(test::contains(e.what(), "truncated: row 3 needs 400 bytes, 123 remain (byte offset " + std::to_string(third_vector) + ")"));

  test::write_text(path, whole.substr(0, third_vector - 3));  // cut inside the word
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path); }).what(), "truncated: row 3 has a word 'thr' but no vector"));

  test::write_text(path, whole.substr(0, third_vector - 7));  // two whole rows of three
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path); }).what(), "header says 3 rows, file has 2"));

  test::write_text(path, "1 2\n" + binary_row("a", {1.0f, 2.0f}) + "\n" + binary_row("b", {1.0f, 2.0f}));
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path); }).what(), "header says 1 rows, file has more data"));
}

TEST_CASE("word2vec: duplicate keys keep the first row and warn once with the count") {
  test::TempDir dir;
  std::string path = dir.file("dup.vec");
  test::write_text(path, "5 2\na 1 1\nb 2 2\na 3 3\nc 4 4\nb 5 5\n");
  Table t = [&] {
    StderrCapture capture(dir.file("stderr.txt"));
    Table table = read_table(path);
    std::string warning = capture.text();
    CHECK(test::contains(warning, "warning: 2 duplicate keys skipped (first kept)"));
    CHECK(std::count(warning.begin(), warning.end(), '\n') == 1);
    return table;
  }();
  REQUIRE(t.size() == 3);
  CHECK(t.row(*t.find("a")) == std::vector<float>{1.0f, 1.0f});
  CHECK(t.row(*t.find("b")) == std::vector<float>{2.0f, 2.0f});
}

TEST_CASE("word2vec: a failed write leaves an existing file untouched and no temporary behind") {
  test::TempDir dir;
  std::string path = dir.file("out.vec");
  test::write_text(path, "precious");
  Table table = keyed_table(5000, 4);
  FailingProgress failing;
  WriteOptions options;
  options.progress = &failing;
  for (const char* format : {"word2vec", "word2vec-bin"}) {
    CHECK_THROWS_WITH(write_table(table, path, format, options), "disk on fire");
    CHECK(test::file_text(path) == "precious");
    CHECK(test::files_in(dir.path()) == 1);
  }
  // gzip output likewise.
  CHECK_THROWS_WITH(write_table(table, path + ".gz", "word2vec", options), "disk on fire");
  CHECK(test::files_in(dir.path()) == 1);

  CHECK_THROWS_WITH_AS(write_table(table, dir.file("missing/out.vec")), doctest::Contains("missing/out.vec"), IoError);

  if (::geteuid() != 0) {  // root writes through permissions
    std::string locked = dir.file("locked");
    std::filesystem::create_directory(locked);
    test::write_text(locked + "/out.vec", "precious");
    ::chmod(locked.c_str(), 0555);
    CHECK_THROWS_AS(write_table(table, locked + "/out.vec"), IoError);
    ::chmod(locked.c_str(), 0755);
    CHECK(test::file_text(locked + "/out.vec") == "precious");
  }

  // A key word2vec cannot hold is refused, and nothing is written.
  Table spaced = Table::from_rows({1.0f, 2.0f}, 2, {"new york"});
  CHECK_THROWS_WITH_AS(write_table(spaced, dir.file("s.vec")), doctest::Contains("contains a space"), Error);
  CHECK_FALSE(std::filesystem::exists(dir.file("s.vec")));
}

TEST_CASE("word2vec: unkeyed tables get row numbers as words; progress is reported") {
  test::TempDir dir;
  Table table = Table::from_rows({1, 2, 3, 4, 5, 6}, 2);
  CountingProgress progress;
  WriteOptions write_options;
  write_options.progress = &progress;
  write_table(table, dir.file("n.vec"), {}, write_options);
  CHECK(test::file_text(dir.file("n.vec")) == "3 2\n0 1 2\n1 3 4\n2 5 6\n");
  CHECK(progress.totals == std::vector<uint64_t>{3});
  CHECK(progress.last == 3);
  CHECK(progress.ends == 1);

  CountingProgress reading;
  ReadOptions read_options;
  read_options.progress = &reading;
  Table back = read_table(dir.file("n.vec"), {}, read_options);
  CHECK(back.key(2) == "2");
  CHECK(reading.totals == std::vector<uint64_t>{std::filesystem::file_size(dir.file("n.vec"))});
  CHECK(reading.last == reading.totals[0]);
  CHECK(reading.ends == 1);
}

TEST_CASE("word2vec: the shared reader handles small buffers, long lines, raw reads and gzip") {
  test::TempDir dir;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line" + std::to_string(i) + std::string(static_cast<size_t>(i % 97), 'x') + "\r\n";
  text += "last";
  for (const char* name : {"lines.txt", "lines.txt.gz"}) {
    CAPTURE(name);
    std::string path = dir.file(name);
    {
      io::OutputFile out(path, 256);  // small buffer: writes larger than it go straight through
      out.write(text.substr(0, 1000));
      out.write(text.substr(1000));
      out.commit();
    }
    io::InputFile in(path, 64);  // lines longer than the buffer make it grow
    CHECK(in.compressed() == (std::string(name).find(".gz") != std::string::npos));
    CHECK(in.peek(4) == "line");
    std::string_view line;
    for (int i = 0; i < 200; ++i) {
      REQUIRE(in.next_line(line));
      CHECK(line == "line" + std::to_string(i) + std::string(static_cast<size_t>(i % 97), 'x'));
      CHECK(in.line_number() == static_cast<uint64_t>(i + 1));
      CHECK_FALSE(in.last_line_unterminated());
    }
    REQUIRE(in.next_line(line));
    CHECK(line == "last");
    CHECK(in.last_line_unterminated());
    CHECK_FALSE(in.next_line(line));
    CHECK(in.position() == text.size());
  }

  // Raw reads larger than the buffer bypass it; read_until stops at max_length.
  std::string raw(10000, '\0');
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<char>(i * 7);
  test::write_bytes(dir.file("raw.bin"), std::vector<uint8_t>(raw.begin(), raw.end()));
  io::InputFile in(dir.file("raw.bin"), 64);
  std::string head(10, '\0'), body(5000, '\0'), rest(10000, '\0');
  CHECK(in.read(head.data(), head.size()) == 10);
  CHECK(in.peek_byte() == static_cast<unsigned char>(raw[10]));
  CHECK(in.read(body.data(), body.size()) == 5000);
  CHECK(in.read(rest.data(), rest.size()) == 4990);
  CHECK(head + body + rest.substr(0, 4990) == raw);
  CHECK(in.peek_byte() == -1);

  test::write_bytes(dir.file("word.bin"), std::vector<uint8_t>(300, 'a'));
  io::InputFile words(dir.file("word.bin"), 64);
  std::string_view token;
  bool terminated = true;
  REQUIRE(words.read_until(' ', 100, token, terminated));
  CHECK(token.size() == 100);
  CHECK_FALSE(terminated);

  CHECK_THROWS_WITH_AS(io::InputFile(dir.file("absent.txt")), doctest::Contains("absent.txt: cannot open: No such file"),
                       IoError);
}

TEST_CASE("word2vec: a row count that disagrees with the header is an error unless lenient") {
  test::TempDir dir;
  const std::string more = dir.file("more.txt"), fewer = dir.file("fewer.txt");
  test::write_text(more, "2 2\na 1 2\nb 3 4\nc 5 6\n");
  test::write_text(fewer, "3 2\na 1 2\nb 3 4\n");
  CHECK_THROWS_WITH_AS(read_table(more), doctest::Contains("header says 2 rows, file has 3 (accept with --lenient)"),
                       ParseError);
  CHECK_THROWS_WITH_AS(read_table(fewer), doctest::Contains("header says 3 rows, file has 2 (accept with --lenient)"),
                       ParseError);
  ReadOptions lenient;
  lenient.lenient = true;
  CHECK(read_table(more, {}, lenient).size() == 3);
  CHECK(read_table(fewer, {}, lenient).size() == 2);

  // Binary: a file that ends cleanly after fewer rows than its header says.
  Table two = Table::from_rows({1, 2, 3, 4}, 2, {"a", "b"});
  const std::string bin = dir.file("t.bin");
  write_table(two, bin, "word2vec-bin");
  auto bytes = test::read_bytes(bin);
  bytes[0] = '3';  // header "2 2" -> "3 2"
  test::write_bytes(bin, bytes);
  CHECK_THROWS_WITH_AS(read_table(bin), doctest::Contains("truncated: header says 3 rows, file has 2"), ParseError);
  CHECK(read_table(bin, {}, lenient).size() == 2);
}

TEST_CASE("word2vec and glove: keys that are not UTF-8 are errors, or repaired on request") {
  test::TempDir dir;
  const std::string w2v = dir.file("bad.txt"), glove = dir.file("bad.glove.txt");
  test::write_text(w2v, "2 2\nca\xFF" "fe 1 2\nok 3 4\n");
  test::write_text(glove, "ca\xFF" "fe 1 2\nok 3 4\n");
  for (const auto& c : {std::tuple{w2v, "word2vec", 2}, std::tuple{glove, "glove", 1}}) {
    // Not a structured binding: clang before 16 cannot capture those in lambdas (CAPTURE is one).
    const std::string& path = std::get<0>(c);
    const char* format = std::get<1>(c);
    const int line = std::get<2>(c);
    CAPTURE(format);
    auto e = test::caught<ParseError>([&] { read_table(path, format); });
    CHECK(e.line() == uint64_t(line));
    CHECK(test::contains(e.what(), "is not valid UTF-8 (byte 3)"));
    ReadOptions options;
    options.unicode_errors = UnicodeErrors::replace;
    Table replaced = read_table(path, format, options);
    CHECK(replaced.find("ca\xEF\xBF\xBD" "fe").has_value());
    options.unicode_errors = UnicodeErrors::ignore;
    Table ignored = read_table(path, format, options);
    CHECK(ignored.find("cafe").has_value());
    CHECK(ignored.get("cafe") == std::vector<float>{1, 2});
  }
  // Binary word2vec too; the message names the byte offset instead of a line.
  Table one = Table::from_rows({1, 2}, 2, {"cafe"});
  const std::string bin = dir.file("t.bin");
  write_table(one, bin, "word2vec-bin");
  auto bytes = test::read_bytes(bin);
  bytes[4 + 2] = 0xFF;  // "1 2\n" then "ca\xFF" "e"
  test::write_bytes(bin, bytes);
  CHECK_THROWS_WITH_AS(read_table(bin), doctest::Contains("byte offset 4"), ParseError);
  ReadOptions ignore;
  ignore.unicode_errors = UnicodeErrors::ignore;
  CHECK(read_table(bin, {}, ignore).find("cae").has_value());
}
