#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

const std::string kNbsp = "\xC2\xA0";  // U+00A0 NO-BREAK SPACE in UTF-8

}  // namespace

TEST_CASE("glove: round trips are bit exact, plain and gzip, with awkward words") {
  test::TempDir dir;
  const size_t n = 400, d = 25;
  std::vector<float> rows = test::clustered_rows(n, d, 8, 11);
  const float awkward[] = {0.1f, -0.0f, FLT_MAX, -FLT_MIN, std::numeric_limits<float>::denorm_min(), 1.0f / 3.0f, 1e-30f};
  std::copy(std::begin(awkward), std::end(awkward), rows.begin());
  std::vector<std::string> keys;
  for (size_t i = 0; i < n; ++i) keys.push_back("w" + std::to_string(i));
  keys[1] = ". . .";                        // GloVe 840B has tokens with spaces
  keys[2] = "at" + kNbsp + "home";          // and with non-breaking spaces
  keys[3] = kNbsp;                          // a word that is only a non-breaking space
  keys[4] = "2";                            // a word that looks like a number
  keys[5] = "route 66";                     // a multi-part word ending in a number
  keys[6] = "trailing ";                    // a word ending in a space
  keys[7] = "\xE6\x97\xA5\xE6\x9C\xAC";     // 日本
  Table table = Table::from_rows(std::move(rows), d, keys);
  for (const char* name : {"g.txt", "g.txt.gz"}) {
    CAPTURE(name);
    std::string path = dir.file(name);
    write_table(table, path);
    CHECK(std::string(detect_format(path).name) == "glove");
    Table back = read_table(path);
    test::check_same_table(table, back);
    CHECK(back.meta().source_format == "glove");
    // GloVe lists words most frequent first, and a saved copy still says so.
    CHECK(back.meta().rows_by_frequency);
    back.save(dir.file("g.vecpack"));
    CHECK(Table::open(dir.file("g.vecpack")).meta().rows_by_frequency);
  }
  // No header: the first line is the first row.
  CHECK(test::file_text(dir.file("g.txt")).rfind("w0 0.1 -0 ", 0) == 0);
}

TEST_CASE("glove: words with spaces and non-breaking spaces keep their exact bytes") {
  test::TempDir dir;
  std::string path = dir.file("840b.txt");
  test::write_text(path,
             ". . . 0.5 1 1.5\n"               // the first line itself has a spaced word
             ", 1 2 3\n"
             "at" + kNbsp + "name@x.com 4 5 6\n"
             "new york 7 8 9\n"
             "a\tb 10 11 12\n"
             "x  13 14 15\n");                 // two blanks: the second belongs to the word
  Table t = read_table(path);
  REQUIRE(t.size() == 6);
  CHECK(t.dim() == 3);
  CHECK(t.key(0) == ". . .");
  CHECK(t.key(1) == ",");
  CHECK(t.key(2) == "at" + kNbsp + "name@x.com");
  CHECK(t.key(3) == "new york");
  CHECK(t.key(4) == "a\tb");
  CHECK(t.key(5) == "x ");
  CHECK(t.row(0) == std::vector<float>{0.5f, 1.0f, 1.5f});
  CHECK(t.row(3) == std::vector<float>{7.0f, 8.0f, 9.0f});
  CHECK(t.row(5) == std::vector<float>{13.0f, 14.0f, 15.0f});
  // A first word that parses as a number still leaves one field for the word.
  test::write_text(path, "1 2 3\n4 5 6\n");
  Table numeric = read_table(path, "glove");
  CHECK(numeric.dim() == 2);
  CHECK(numeric.key(1) == "4");
}

TEST_CASE("glove: CRLF, a byte order mark, trailing blanks and blank lines are tolerated") {
  test::TempDir dir;
  std::string path = dir.file("crlf.txt");
  test::write_text(path, "\xEF\xBB\xBF" "the 0.1 0.2 \r\n\r\nof -1 +2e3\r\nand 5 6");
  CHECK(std::string(detect_format(path).name) == "glove");
  Table t = read_table(path);
  REQUIRE(t.size() == 3);
  CHECK(t.key(0) == "the");
  CHECK(t.key(1) == "of");
  CHECK(t.row(1) == std::vector<float>{-1.0f, 2000.0f});
  CHECK(t.row(2) == std::vector<float>{5.0f, 6.0f});
}

TEST_CASE("glove: limit reads only the first rows") {
  test::TempDir dir;
  std::string path = dir.file("l.txt");
  test::write_text(path, "a 1 2\nb 3 4\nc 5 6\nd 7\n");  // the bad last line is never read
  ReadOptions options;
  options.limit = 3;
  Table t = read_table(path, {}, options);
  REQUIRE(t.size() == 3);
  CHECK(t.key(2) == "c");
}

TEST_CASE("glove: errors name the file, line and column") {
  test::TempDir dir;
  std::string path = dir.file("bad.txt");

  test::write_text(path, "a 1 2 3\nb 1 2 3\nc 1 2\n");
  ParseError few = test::caught<ParseError>([&] { read_table(path, "glove"); });
  CHECK(test::contains(few.what(), "bad.txt:3:"));
  CHECK(test::contains(few.what(), "expected 3 values after the word, found 2"));
  CHECK(few.line() == 3);

  test::write_text(path, "a 1 2 3\nb 1 zz 3\n");
  ParseError bad = test::caught<ParseError>([&] { read_table(path, "glove"); });
  CHECK(test::contains(bad.what(), "bad.txt:2:5:"));
  CHECK(test::contains(bad.what(), "'zz' is not a number (value 2 of 3)"));

  test::write_text(path, "a 1 2\nb inf 2\n");
  ParseError infinite = test::caught<ParseError>([&] { read_table(path, "glove"); });
  CHECK(test::contains(infinite.what(), "bad.txt:2:3:"));
  CHECK(test::contains(infinite.what(), "infinity in value 1 of row 2 (word 'b')"));
  ReadOptions options;
  options.allow_nan = true;
  CHECK(std::isinf(read_table(path, "glove", options).row(1)[0]));

  test::write_text(path, "2 3\na 1 2 3\n");
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path, "glove"); }).what(), "read the file as word2vec"));

  test::write_text(path, "\n\n");
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path, "glove"); }).what(), "the file has no rows"));

  test::write_text(path, "justaword\n");
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path, "glove"); }).what(), "expected a word followed by numbers"));

  test::write_text(path, "a 1\n\xC0\xAF 2\n");  // an overlong '/'
  ParseError utf8 = test::caught<ParseError>([&] { read_table(path, "glove"); });
  CHECK(test::contains(utf8.what(), "bad.txt:2:1:"));
  CHECK(test::contains(utf8.what(), "not valid UTF-8"));

  test::write_text(path, "a 1 2\n 3 4\n");
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path, "glove"); }).what(), "bad.txt:2:1: the line starts with a blank"));
}

TEST_CASE("glove: duplicate keys keep the first row") {
  test::TempDir dir;
  std::string path = dir.file("dup.txt");
  test::write_text(path, "a 1 1\nb 2 2\na 3 3\n");
  Table t = read_table(path);
  REQUIRE(t.size() == 2);
  CHECK(t.row(*t.find("a")) == std::vector<float>{1.0f, 1.0f});
}

TEST_CASE("glove: writing refuses keys with line breaks and keeps the old file") {
  test::TempDir dir;
  std::string path = dir.file("out.txt");
  test::write_text(path, "old");
  Table table = Table::from_rows({1, 2, 3, 4}, 2, {"fine", "two\nlines"});
  CHECK_THROWS_WITH_AS(write_table(table, path), doctest::Contains("contains a line break"), Error);
  CHECK(test::file_text(path) == "old");
  CHECK(test::files_in(dir.path()) == 1);
  CHECK_THROWS_AS(write_table(table, dir.file("no/such/dir/out.txt")), IoError);
}

TEST_CASE("glove: writing refuses keys a reader could not take back: a leading blank, a first key ending in a number") {
  test::TempDir dir;
  const std::string path = dir.file("out.txt");
  for (const char* key : {"\t\t\t", " lead", "\tlead"}) {
    CAPTURE(key);
    Table table = Table::from_rows({1, 2, 3, 4}, 2, {"fine", key});
    CHECK_THROWS_WITH_AS(write_table(table, path), doctest::Contains("its key '"), Error);
    CHECK_THROWS_WITH_AS(write_table(table, path), doctest::Contains("' starts with a blank"), Error);
  }
  for (const char* key : {"route 66", "route 66\t\t"}) {
    CAPTURE(key);
    Table numbered = Table::from_rows({1, 2, 3, 4}, 2, {key, "fine"});
    CHECK_THROWS_WITH_AS(write_table(numbered, path), doctest::Contains("cannot write row 0 as glove: its key 'route 66"), Error);
  }
  // After the first row the dimension is known, and such a key reads back exactly.
  Table later = Table::from_rows({1, 2, 3, 4}, 2, {"fine", "route 66"});
  write_table(later, path);
  Table back = read_table(path);
  REQUIRE(back.size() == 2);
  CHECK(back.key(1) == "route 66");
  CHECK(back.row(1) == std::vector<float>{3, 4});
}

TEST_CASE("glove: a first line of two integers is written so that it cannot read as a word2vec header") {
  // "12 7" (an integer key, one integral value) is word2vec's "count dim"; "12 7.0" is a row.
  test::TempDir dir;
  const std::string path = dir.file("out.txt");
  for (const char* key : {"12", "2\t\t", "-3"}) {
    CAPTURE(key);
    Table table = Table::from_rows({7, 8}, 1, {key, "x"});
    write_table(table, path, "glove");
    CHECK(test::file_text(path) == std::string(key) + " 7.0\nx 8\n");
    Table back = read_table(path, "glove");
    REQUIRE(back.size() == 2);
    CHECK(back.key(0) == key);
    CHECK(back.row(0) == std::vector<float>{7});
  }
  Table unkeyed = Table::from_rows({-0.0f, 5}, 1);  // keys "0", "1"
  write_table(unkeyed, path, "glove");
  CHECK(test::file_text(path) == "0 -0.0\n1 5\n");
  CHECK(std::signbit(read_table(path, "glove").row(0)[0]));
  Table fraction = Table::from_rows({7.5f, 8}, 1, {"12", "x"});
  write_table(fraction, path, "glove");
  CHECK(test::file_text(path) == "12 7.5\nx 8\n");
}

TEST_CASE("text writers refuse keys that are not valid UTF-8, which no reader would take back") {
  test::TempDir dir;
  Table table = Table::from_rows({1, 2, 3, 4}, 2, {"fine", "caf\xE9"});
  for (const char* name : {"out.txt", "out.w2v.txt", "out.bin", "out.vec", "out.h5"}) {
    CAPTURE(name);
    const std::string format = std::string(name) == "out.txt"       ? "glove"
                               : std::string(name) == "out.w2v.txt" ? "word2vec"
                                                                    : "";
    Error e = test::caught<Error>([&] { write_table(table, dir.file(name), format); });
    CHECK_MESSAGE(test::contains(e.what(), "cannot write row 1 as "), e.what());
    CHECK_MESSAGE(test::contains(e.what(), "its key 'caf\\xE9' is not valid UTF-8"), e.what());
  }
  CHECK(test::files_in(dir.path()) == 0);
}

TEST_CASE("glove: sniffing tells GloVe from word2vec and from other text") {
  test::TempDir dir;
  test::write_text(dir.file("g.dat"), "the 0.418 0.24968 -0.41242\n");
  test::write_text(dir.file("w.dat"), "1 3\nthe 0.418 0.24968 -0.41242\n");
  test::write_text(dir.file("prose.dat"), "This is not an embedding file at all.\n");
  CHECK(std::string(detect_format(dir.file("g.dat")).name) == "glove");
  CHECK(std::string(detect_format(dir.file("w.dat")).name) == "word2vec");
  CHECK_THROWS_WITH_AS(detect_format(dir.file("prose.dat")), doctest::Contains("known formats"), Error);
  // A first line longer than the sniffed head still counts.
  std::string long_line = "word";
  for (int i = 0; i < 2000; ++i) long_line += " 0.123456";
  test::write_text(dir.file("long.dat"), long_line + "\n");
  CHECK(std::string(detect_format(dir.file("long.dat")).name) == "glove");
  CHECK(read_table(dir.file("long.dat")).dim() == 2000);
}

TEST_CASE("glove: lines longer than the read buffer") {
  test::TempDir dir;
  const size_t d = 60000;
  std::vector<float> rows(2 * d);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i % 1000) / 7.0f;
  // A long word takes the line past the 1 MiB read buffer.
  Table table = Table::from_rows(rows, d, {"first " + std::string(600000, 'x'), "second word"});
  write_table(table, dir.file("wide.txt"));
  CHECK(test::file_text(dir.file("wide.txt")).find('\n') > (size_t{1} << 20));
  test::check_same_table(table, read_table(dir.file("wide.txt")));
}
