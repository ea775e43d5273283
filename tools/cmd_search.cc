// vecpack search FILE [KEY...] [--vector V] [--queries FILE]: nearest rows.
#include <cctype>
#include <fstream>
#include <charconv>
#include <cstdio>
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {

static std::vector<float> parse_vector(const std::string& text, size_t dim) {
  std::vector<float> v;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    while (p < end && (*p == ',' || *p == ' ' || *p == '\t')) ++p;
    if (p == end) break;
    float x;
    auto r = std::from_chars(p, end, x);
    if (r.ec != std::errc()) throw Error("--vector: '" + std::string(p, std::min<size_t>(end - p, 20)) + "' is not a number");
    v.push_back(x);
    p = r.ptr;
  }
  if (v.size() != dim)
    throw Error("--vector has " + std::to_string(v.size()) + " values; the table's dimension is " + std::to_string(dim));
  return v;
}

// The rows a file names, one per line: a key, or #N for row id N.
static std::vector<int64_t> rows_named_in(const Table& t, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path, "cannot be opened");
  std::vector<int64_t> ids;
  size_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#' && line.size() > 1 && line.size() < 19 && line.find_first_not_of("0123456789", 1) == std::string::npos) {
      ids.push_back(std::stoll(line.substr(1)));
      continue;
    }
    auto row = t.find(line);
    if (!row) throw NotFoundError(path + ":" + std::to_string(line_number) + ": key '" + line + "' is not in the table");
    ids.push_back(static_cast<int64_t>(*row));
  }
  return ids;
}

// --filter table=N|NAME: the rows of one feature table.
static RowFilter rows_of_filter(const Table& t, const std::string& filter) {
  const std::string prefix = "table=";
  if (filter.rfind(prefix, 0) != 0 || filter.size() == prefix.size())
    throw Error("--filter '" + filter + "': expected table=N or table=NAME");
  const std::string name = filter.substr(prefix.size());
  if (name.find_first_not_of("0123456789") == std::string::npos && name.size() < 10)
    return t.rows_in_table(static_cast<uint32_t>(std::stoul(name)));
  const uint32_t* tables = t.row_tables();
  if (!tables || !t.has_keys()) return t.rows_in_table(0);  // the error that says what is missing
  for (size_t i = 0; i < t.size(); ++i) {
    const std::string_view key = t.key(i);
    if (key.size() > name.size() && key.substr(0, name.size()) == name && !std::isalnum(static_cast<unsigned char>(key[name.size()])))
      return t.rows_in_table(tables[i]);
  }
  throw NotFoundError("--filter '" + filter + "': no key is " + name + " followed by a separator (as " + name + ":17)");
}

void add_search(CLI::App& app, Globals& globals) {
  struct Options {
    std::string file, vector, queries, metric;
    std::vector<std::string> keys;
    size_t k = 10;
    unsigned threads = 0;
    size_t rerank = 0;
    size_t nprobe = 0;
    double recall = 0;
    std::string funnel;
    bool json = false, include_self = false;
    std::string allow, deny, filter;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("search", "Nearest rows of keys, a vector, or a file of query vectors");
  cmd->add_option("file", o->file, ".vecpack file")->required();
  cmd->add_option("keys", o->keys, "Query by the vectors of these keys (the key itself is left out); tables that derive vectors from keys (subwords, codecs subword and hash:key=string,weights=off) also answer keys they lack");
  cmd->add_option("--vector", o->vector, "Query vector: comma- or space-separated values");
  cmd->add_option("--queries", o->queries, "File of query vectors (any readable format)");
  cmd->add_option("-k", o->k, "Neighbours per query")->capture_default_str();
  cmd->add_option("--metric", o->metric, "ip, cos or l2 (default: the table's)");
  cmd->add_option("--threads", o->threads, "Threads (0: one per core)");
  cmd->add_option("--rerank", o->rerank, "Rescore a shortlist of N candidates with the file's rerank rows");
  cmd->add_option("--nprobe", o->nprobe, "Lists each query scans in a table compressed with an ivf stage (0: all)");
  cmd->add_option("--recall", o->recall,
                  "Instead of --nprobe: a recall@10 to reach, e.g. 0.95 (an ivf table picks its lists from the recall it "
                  "measured when compressed; see inspect)");
  cmd->add_option("--funnel", o->funnel,
                  "Funnel search: shortlist on leading dimensions, rescore with more, e.g. 32:1000,128:100,full");
  cmd->add_flag("--include-self", o->include_self, "Keep a key's own row among its neighbours");
  cmd->add_option("--allow", o->allow, "Return only these rows: a file of keys (or row ids, #N), one per line");
  cmd->add_option("--deny", o->deny, "Never return these rows: a file as for --allow")->excludes("--allow");
  cmd->add_option("--filter", o->filter,
                  "table=N: only rows of feature table N (tables compressed with --row-tables); table=NAME: the "
                  "table whose keys are NAME, a separator, the rest (user for user:17)");
  cmd->add_flag("--json", o->json, "JSON on stdout");
  cmd->callback([o, &globals] {
    Table t = Table::open(o->file);
    if (o->k == 0) throw Error("-k must be at least 1");
    std::vector<std::string> labels;
    std::vector<float> q;
    std::vector<int64_t> self_rows;
    for (const auto& key : o->keys) {
      // A key the table lacks still queries when the table derives vectors for unknown keys
      // (subwords); get() throws NotFoundError otherwise.
      auto row = t.find(key);
      auto v = row ? t.row(*row) : t.get(key);
      q.insert(q.end(), v.begin(), v.end());
      labels.push_back(key);
      self_rows.push_back(o->include_self || !row ? -1 : static_cast<int64_t>(*row));
    }
    if (!o->vector.empty()) {
      auto v = parse_vector(o->vector, t.dim());
      q.insert(q.end(), v.begin(), v.end());
      labels.push_back("vector");
      self_rows.push_back(-1);
    }
    if (!o->queries.empty()) {
      ReadOptions read;
      auto progress = make_progress(globals);
      read.progress = progress.get();
      Table queries = load_table(o->queries, "", read);
      if (queries.dim() != t.dim())
        throw Error(o->queries + ": queries have dimension " + std::to_string(queries.dim()) + ", the table " + std::to_string(t.dim()));
      size_t old = q.size();
      q.resize(old + queries.size() * queries.dim());
      queries.reconstruct(0, queries.size(), q.data() + old);
      for (size_t i = 0; i < queries.size(); ++i) {
        labels.push_back(queries.has_keys() ? std::string(queries.key(i)) : "query " + std::to_string(i));
        self_rows.push_back(-1);
      }
    }
    if (labels.empty()) throw Error("nothing to search for: give keys, --vector or --queries");
    SearchOptions options;
    options.k = o->k + (o->include_self ? 0 : 1);
    options.threads = o->threads;
    options.rerank = o->rerank;
    options.nprobe = o->nprobe;
    options.recall = o->recall;
    if (!o->funnel.empty()) options.funnel = parse_funnel(o->funnel);
    if (!o->filter.empty()) options.filter = rows_of_filter(t, o->filter);
    if (!o->allow.empty() || !o->deny.empty()) {
      const std::vector<int64_t> ids = rows_named_in(t, o->allow.empty() ? o->deny : o->allow);
      options.filter = options.filter.intersect(o->allow.empty() ? RowFilter::deny(ids.data(), ids.size(), t.size())
                                                                 : RowFilter::allow(ids.data(), ids.size(), t.size()));
    }
    std::optional<Metric> metric;
    if (!o->metric.empty()) metric = parse_metric(o->metric);
    SearchResult r = t.search(q.data(), labels.size(), options, metric);

    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < labels.size(); ++i) {
      nlohmann::json neighbours = nlohmann::json::array();
      if (!o->json) std::printf("%s\n", labels[i].c_str());
      size_t shown = 0;
      for (size_t j = 0; j < r.k && shown < o->k; ++j) {
        int64_t id = r.ids_of(i)[j];
        if (id < 0 || id == self_rows[i]) continue;
        ++shown;
        std::string key = t.has_keys() ? std::string(t.key(id)) : std::to_string(id);
        if (o->json)
          neighbours.push_back({{"row", id}, {"key", key}, {"score", r.scores_of(i)[j]}});
        else
          std::printf("  %3zu  %-24s %9.4f\n", shown, key.c_str(), r.scores_of(i)[j]);
      }
      if (o->json) out.push_back({{"query", labels[i]}, {"neighbors", neighbours}});
    }
    if (o->json) print_json(out);
  });
}

}  // namespace vecpack::cli
