// The synthetic stochastic-block-model dataset (see gcn/synthetic.hpp).
//
// Scale: up to ~10^8 stored edges, so no per-node containers. Edges are drawn
// twice from the counter-based generator (once to count each row's length,
// once to fill the rows) instead of being kept in a temporary list; the rows
// are filled straight into the final edge_dst array, then sorted, de-duplicated
// and compacted in place. Peak memory is about 8 bytes per stored edge plus
// 20 bytes per node, plus the features.
//
// Determinism: every random value is a pure function of (seed, stream, index).
// The only thread-dependent step is the order in which concurrent threads
// append to a row; each row is sorted afterwards, so the result is the same
// for any OpenMP thread count.
#include "gcn/data/synthetic.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <vector>

#include "gcn/error.hpp"
#include "gcn/rng.hpp"

namespace gcn {
namespace {

constexpr std::string_view kPrefix = "synthetic";
constexpr int64_t kMaxNodes = int64_t{std::numeric_limits<int32_t>::max()} - 1;  // [2, 2^31-1)
constexpr int64_t kMaxCsr = std::numeric_limits<int32_t>::max();                 // int32 indptr
constexpr int32_t kMaxClasses = 1000;

// Streams of the generator, one per kind of draw.
enum : uint64_t {
  kLabelStream = 0x5359'4e00'0001ull,
  kCountStream = 0x5359'4e00'0002ull,  // whether a node draws the extra target
  kHomStream = 0x5359'4e00'0003ull,    // inside or outside the block
  kPickStream = 0x5359'4e00'0004ull,   // which target
  kBandStream = 0x5359'4e00'0005ull,   // class-band feature columns
  kRestStream = 0x5359'4e00'0006ull,   // the other feature columns
};

// The bits behind gcn::uniform01(seed, stream, index), with the per-stream
// part hoisted out of the loops.
class Stream {
 public:
  Stream(uint64_t seed, uint64_t stream) : key_(stream_key(seed, stream)) {}
  uint64_t bits(uint64_t index) const { return mix64(key_ + index); }
  // Uniform in [0, 1) with 53 bits.
  double uniform(uint64_t index) const {
    return static_cast<double>(bits(index) >> 11) * (1.0 / 9007199254740992.0);
  }
  // Uniform integer in [0, n), n <= 2^32 (multiply-shift on 32 bits; the bias
  // is below n / 2^32).
  uint32_t below(uint64_t index, uint64_t n) const {
    return static_cast<uint32_t>(((bits(index) >> 32) * n) >> 32);
  }

 private:
  uint64_t key_;
};

[[noreturn]] void usage(const std::string& msg) { throw UsageError("synthetic: " + msg); }

// ---- the keys ---------------------------------------------------------------

enum class Key {
  kNodes,
  kDegree,
  kFeatures,
  kNnz,
  kClasses,
  kHomophily,
  kSignal,
  kSeed,
  kTrain,
  kVal,
  kTest
};
struct KeyInfo {
  Key key;
  const char* name;
  const char* allowed;  // for messages
};
constexpr KeyInfo kKeys[] = {
    {Key::kNodes, "nodes", "an integer in [2, 2147483646]"},
    {Key::kDegree, "degree", "a number in [0, nodes-1]"},
    {Key::kFeatures, "features", "an integer in [1, 2147483647]"},
    {Key::kNnz, "nnz", "an integer in [1, features]"},
    {Key::kClasses, "classes", "an integer in [2, 1000]"},
    {Key::kHomophily, "homophily", "a number in [0, 1]"},
    {Key::kSignal, "signal", "a number in [0, 1]"},
    {Key::kSeed, "seed", "an integer in [0, 2^64-1]"},
    {Key::kTrain, "train_per_class",
     "an integer >= 0 with classes*train_per_class+val+test <= nodes"},
    {Key::kVal, "val", "an integer >= 0 with classes*train_per_class+val+test <= nodes"},
    {Key::kTest, "test", "an integer >= 0 with classes*train_per_class+val+test <= nodes"},
};

const KeyInfo& info(Key key) {
  for (const KeyInfo& k : kKeys) {
    if (k.key == key) return k;
  }
  usage("internal: unknown key");
}

[[noreturn]] void out_of_range(Key key, const std::string& value) {
  const KeyInfo& k = info(key);
  usage(std::string(k.name) + "=" + value + " is out of range; allowed: " + k.allowed);
}

[[noreturn]] void not_a_number(const KeyInfo& k, std::string_view text) {
  usage(std::string(k.name) + "='" + std::string(text) + "' is not " +
        (k.key == Key::kDegree || k.key == Key::kHomophily || k.key == Key::kSignal
             ? "a number"
             : "an integer") +
        "; allowed: " + k.allowed);
}

template <typename T>
T parse_number(const KeyInfo& k, std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::result_out_of_range) out_of_range(k.key, std::string(text));
  if (ec != std::errc() || ptr != end || text.empty()) not_a_number(k, text);
  return value;
}

int32_t to_int32(Key key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) out_of_range(key, std::to_string(v));
  return static_cast<int32_t>(v);
}

std::string num(double v) { return fmt::format("{}", v); }

void check_range(Key key, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) out_of_range(key, num(v));  // also rejects NaN
}

// Targets node i draws: floor(degree/2), plus one with probability frac(degree/2).
struct DrawCount {
  int64_t base = 0;
  double frac = 0.0;
  int64_t max() const { return base + (frac > 0.0 ? 1 : 0); }
};
DrawCount draw_count(double degree) {
  DrawCount d;
  d.base = static_cast<int64_t>(std::floor(degree / 2.0));
  d.frac = degree / 2.0 - static_cast<double>(d.base);
  return d;
}

// Non-zeros of a row drawn from the class band.
int64_t band_nnz(const SyntheticSpec& s) {
  return std::llround(s.feature_signal * static_cast<double>(s.nnz_per_row));
}

}  // namespace

bool is_synthetic_name(const std::string& dataset_arg) {
  const std::string_view a(dataset_arg);
  return a == kPrefix || (a.size() > kPrefix.size() && a.substr(0, kPrefix.size()) == kPrefix &&
                          a[kPrefix.size()] == ':');
}

void validate(const SyntheticSpec& s) {
  if (s.nodes < 2 || s.nodes > kMaxNodes) out_of_range(Key::kNodes, std::to_string(s.nodes));
  check_range(Key::kDegree, s.degree, 0.0, static_cast<double>(s.nodes - 1));
  if (s.features < 1) out_of_range(Key::kFeatures, std::to_string(s.features));
  if (s.nnz_per_row < 1 || s.nnz_per_row > s.features) {
    usage("nnz=" + std::to_string(s.nnz_per_row) + " is out of range; allowed: an integer in [1, " +
          "features=" + std::to_string(s.features) + "]");
  }
  if (s.classes < 2 || s.classes > kMaxClasses) {
    out_of_range(Key::kClasses, std::to_string(s.classes));
  }
  check_range(Key::kHomophily, s.homophily, 0.0, 1.0);
  check_range(Key::kSignal, s.feature_signal, 0.0, 1.0);
  if (s.train_per_class < 0) out_of_range(Key::kTrain, std::to_string(s.train_per_class));
  if (s.val < 0) out_of_range(Key::kVal, std::to_string(s.val));
  if (s.test < 0) out_of_range(Key::kTest, std::to_string(s.test));

  const int64_t split = int64_t{s.classes} * s.train_per_class + s.val + s.test;
  if (split > s.nodes) {
    usage("the split does not fit: classes*train_per_class + val + test = " +
          std::to_string(s.classes) + "*" + std::to_string(s.train_per_class) + " + " +
          std::to_string(s.val) + " + " + std::to_string(s.test) + " = " + std::to_string(split) +
          " exceeds nodes=" + std::to_string(s.nodes));
  }
  // Every generated edge is stored twice; gcn_norm then adds one self loop per
  // node, and that matrix too has int32 offsets.
  const int64_t max_edges = 2 * s.nodes * draw_count(s.degree).max();
  if (max_edges + s.nodes > kMaxCsr) {
    usage("nodes=" + std::to_string(s.nodes) + " with degree=" + num(s.degree) + " gives up to " +
          std::to_string(max_edges) + " edges (+" + std::to_string(s.nodes) +
          " self loops in the GCN's adjacency), more than a CSR with int32 offsets holds "
          "(2^31-1); lower nodes or degree");
  }
  const int64_t feature_nnz = s.nodes * s.nnz_per_row;
  if (feature_nnz > kMaxCsr) {
    usage("nodes=" + std::to_string(s.nodes) + " with nnz=" + std::to_string(s.nnz_per_row) +
          " gives " + std::to_string(feature_nnz) +
          " feature non-zeros, more than a CSR with int32 offsets holds (2^31-1); lower nodes or "
          "nnz");
  }
  const int64_t band_width = s.features / s.classes;  // the narrowest band
  if (band_nnz(s) > band_width) {
    usage("signal=" + num(s.feature_signal) + " puts " + std::to_string(band_nnz(s)) +
          " of nnz=" + std::to_string(s.nnz_per_row) +
          " non-zeros per row in the class band, but the bands are only features/classes = " +
          std::to_string(band_width) + " wide; lower signal or nnz, or raise features");
  }
}

SyntheticSpec parse_synthetic_spec(const std::string& dataset_arg) {
  if (!is_synthetic_name(dataset_arg)) {
    throw UsageError("'" + dataset_arg +
                     "' is not a synthetic dataset (synthetic or synthetic:key=value,...)");
  }
  SyntheticSpec s;
  std::string_view rest(dataset_arg);
  rest.remove_prefix(std::min(rest.size(), kPrefix.size() + 1));
  bool seen[std::size(kKeys)] = {};
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty())
      usage("trailing ',' in '" + dataset_arg + "'");
    const size_t eq = item.find('=');
    if (item.empty()) usage("empty item in '" + dataset_arg + "'");
    if (eq == std::string_view::npos) {
      usage("'" + std::string(item) + "' is not key=value (in '" + dataset_arg + "')");
    }
    const std::string_view name = item.substr(0, eq);
    const std::string_view value = item.substr(eq + 1);
    size_t i = 0;
    while (i < std::size(kKeys) && name != kKeys[i].name) ++i;
    if (i == std::size(kKeys)) {
      std::string known;
      for (const KeyInfo& k : kKeys) known += std::string(known.empty() ? "" : ", ") + k.name;
      usage("unknown key '" + std::string(name) + "'; known keys: " + known);
    }
    if (seen[i]) usage("key '" + std::string(name) + "' is given twice");
    seen[i] = true;
    const KeyInfo& k = kKeys[i];
    switch (k.key) {
      case Key::kNodes:
        s.nodes = parse_number<int64_t>(k, value);
        if (s.nodes < 2 || s.nodes > kMaxNodes) out_of_range(k.key, std::to_string(s.nodes));
        break;
      case Key::kDegree:
        s.degree = parse_number<double>(k, value);
        break;
      case Key::kFeatures:
        s.features = to_int32(k.key, parse_number<int64_t>(k, value), 1, kMaxCsr);
        break;
      case Key::kNnz:
        s.nnz_per_row = to_int32(k.key, parse_number<int64_t>(k, value), 1, kMaxCsr);
        break;
      case Key::kClasses:
        s.classes = to_int32(k.key, parse_number<int64_t>(k, value), 2, kMaxClasses);
        break;
      case Key::kHomophily:
        s.homophily = parse_number<double>(k, value);
        break;
      case Key::kSignal:
        s.feature_signal = parse_number<double>(k, value);
        break;
      case Key::kSeed:
        s.seed = parse_number<uint64_t>(k, value);
        break;
      case Key::kTrain:
        s.train_per_class = to_int32(k.key, parse_number<int64_t>(k, value), 0, kMaxCsr);
        break;
      case Key::kVal:
        s.val = to_int32(k.key, parse_number<int64_t>(k, value), 0, kMaxCsr);
        break;
      case Key::kTest:
        s.test = to_int32(k.key, parse_number<int64_t>(k, value), 0, kMaxCsr);
        break;
    }
  }
  validate(s);
  return s;
}

std::string to_string(const SyntheticSpec& s) {
  return fmt::format(
      "synthetic:nodes={},degree={},features={},nnz={},classes={},homophily={},signal={},seed={},"
      "train_per_class={},val={},test={}",
      s.nodes, s.degree, s.features, s.nnz_per_row, s.classes, s.homophily, s.feature_signal,
      s.seed, s.train_per_class, s.val, s.test);
}

namespace {

// Nodes grouped by class, in node order within a class (a counting sort).
struct ClassIndex {
  std::vector<int32_t> class_ptr;  // (classes + 1)
  std::vector<int32_t> by_class;   // (n) node ids
  std::vector<int32_t> rank;       // (n) each node's position within its class
};

// Each node's class (the blocks), uniform over the classes.
void draw_labels(const SyntheticSpec& spec, Dataset& data) {
  const int32_t n = data.n_nodes;
  const int32_t n_classes = data.n_classes;
  data.labels.resize(static_cast<size_t>(n));
  const Stream label_rng(spec.seed, kLabelStream);
#pragma omp parallel for schedule(static)
  for (int32_t i = 0; i < n; ++i) {
    data.labels[i] = static_cast<int32_t>(label_rng.below(static_cast<uint64_t>(i), n_classes));
  }
}

// Every class must hold train_per_class nodes.
ClassIndex index_classes(const SyntheticSpec& spec, const Dataset& data) {
  const int32_t n = data.n_nodes;
  const int32_t n_classes = data.n_classes;
  ClassIndex classes;
  std::vector<int32_t>& class_ptr = classes.class_ptr;
  class_ptr.assign(static_cast<size_t>(n_classes) + 1, 0);  // (classes + 1)
  for (int32_t c : data.labels) ++class_ptr[c + 1];
  for (int32_t c = 0; c < n_classes; ++c) class_ptr[c + 1] += class_ptr[c];
  std::vector<int32_t>& by_class = classes.by_class;
  by_class.resize(static_cast<size_t>(n));
  std::vector<int32_t>& rank = classes.rank;
  rank.resize(static_cast<size_t>(n));
  {
    std::vector<int32_t> next(class_ptr.begin(), class_ptr.end() - 1);
    for (int32_t i = 0; i < n; ++i) {
      const int32_t c = data.labels[i];
      rank[i] = next[c] - class_ptr[c];
      by_class[next[c]++] = i;
    }
  }
  for (int32_t c = 0; c < n_classes; ++c) {
    const int32_t size = class_ptr[c + 1] - class_ptr[c];
    if (size < spec.train_per_class) {
      usage("class " + std::to_string(c) + " drew " + std::to_string(size) +
            " nodes, fewer than train_per_class=" + std::to_string(spec.train_per_class) +
            "; raise nodes or lower train_per_class");
    }
  }
  return classes;
}

// Sorts and de-duplicates each row of dst (row i at [row_ptr[i],
// row_ptr[i + 1])), then compacts the rows in place; row_ptr becomes the new
// rows' offsets. `cursor` is scratch (n).
void sort_and_compact_rows(std::vector<int32_t>& dst, std::vector<int64_t>& row_ptr, std::vector<int64_t>& cursor) {
  const int32_t n = static_cast<int32_t>(cursor.size());
  // Sort and de-duplicate each row; cursor[i] becomes the row's new length.
#pragma omp parallel for schedule(dynamic, 1024)
  for (int32_t i = 0; i < n; ++i) {
    int32_t* begin = dst.data() + row_ptr[i];
    int32_t* end = dst.data() + row_ptr[i + 1];
    std::sort(begin, end);
    cursor[i] = std::unique(begin, end) - begin;
  }
  // Compact in place (each row moves left or stays).
  int64_t out = 0;
  for (int32_t i = 0; i < n; ++i) {
    const int64_t from = row_ptr[i];
    const int64_t len = cursor[i];
    if (from != out) std::memmove(dst.data() + out, dst.data() + from, sizeof(int32_t) * len);
    row_ptr[i] = out;
    out += len;
  }
  row_ptr[n] = out;
}

// The edges: each node draws its targets (homophily: of its own class), and
// every draw is stored both ways, rows sorted and without duplicates.
void draw_edges(const SyntheticSpec& spec, const ClassIndex& classes, Dataset& data) {
  const int32_t n = data.n_nodes;
  const DrawCount draws = draw_count(spec.degree);
  const int64_t max_draws = draws.max();
  const Stream count_rng(spec.seed, kCountStream);
  const Stream hom_rng(spec.seed, kHomStream);
  const Stream pick_rng(spec.seed, kPickStream);
  auto n_draws = [&](int32_t i) -> int64_t {
    return draws.base +
           (draws.frac > 0.0 && count_rng.uniform(static_cast<uint64_t>(i)) < draws.frac);
  };
  // The j-th target of node i: with probability homophily a node of i's class,
  // otherwise one of another class; never i itself. When the chosen side is
  // empty (i alone in its class, or a single class holds every node) it falls
  // back to any node but i.
  auto target = [&](int32_t i, int64_t j) -> int32_t {
    const uint64_t index =
        static_cast<uint64_t>(i) * static_cast<uint64_t>(max_draws) + static_cast<uint64_t>(j);
    const int32_t c = data.labels[i];
    const int32_t first = classes.class_ptr[c];
    const int32_t size = classes.class_ptr[c + 1] - first;
    const bool inside = hom_rng.uniform(index) < spec.homophily;
    if (inside && size > 1) {
      uint32_t r = pick_rng.below(index, static_cast<uint64_t>(size - 1));
      if (static_cast<int32_t>(r) >= classes.rank[i]) ++r;
      return classes.by_class[static_cast<size_t>(first) + r];
    }
    if (!inside && size < n) {
      const uint32_t r = pick_rng.below(index, static_cast<uint64_t>(n - size));
      return classes.by_class[static_cast<int32_t>(r) < first ? r : static_cast<size_t>(r) + size];
    }
    const int32_t r = static_cast<int32_t>(pick_rng.below(index, static_cast<uint64_t>(n - 1)));
    return r >= i ? r + 1 : r;
  };

  // Row lengths: each draw (i, t) lands in row i and in row t.
  std::vector<int64_t> row_ptr(static_cast<size_t>(n) + 1, 0);  // (n + 1)
#pragma omp parallel for schedule(static)
  for (int32_t i = 0; i < n; ++i) row_ptr[static_cast<size_t>(i) + 1] = n_draws(i);
#pragma omp parallel for schedule(static)
  for (int32_t i = 0; i < n; ++i) {
    const int64_t k = n_draws(i);
    for (int64_t j = 0; j < k; ++j) {
      const int32_t t = target(i, j);
#pragma omp atomic
      ++row_ptr[static_cast<size_t>(t) + 1];
    }
  }
  for (int32_t i = 0; i < n; ++i) row_ptr[i + 1] += row_ptr[i];
  const int64_t n_stored = row_ptr[n];  // <= 2^31 - 1 by validate()

  // Fill the rows: node i's own draws first, in draw order, then the draws
  // that picked i, appended through an atomic cursor. Their order depends on
  // the threads' timing; sort_and_compact_rows removes that.
  std::vector<int32_t>& dst = data.edge_dst;
  dst.resize(static_cast<size_t>(n_stored));
  {
    std::vector<int64_t> cursor(static_cast<size_t>(n));  // (n) next free slot of each row
#pragma omp parallel for schedule(static)
    for (int32_t i = 0; i < n; ++i) cursor[i] = row_ptr[i] + n_draws(i);
#pragma omp parallel for schedule(static)
    for (int32_t i = 0; i < n; ++i) {
      const int64_t k = n_draws(i);
      int32_t* own = dst.data() + row_ptr[i];
      for (int64_t j = 0; j < k; ++j) {
        const int32_t t = target(i, j);
        own[j] = t;
        int64_t in_pos;
#pragma omp atomic capture
        in_pos = cursor[t]++;
        dst[in_pos] = i;
      }
    }
    sort_and_compact_rows(dst, row_ptr, cursor);
  }
  const int64_t n_edges = row_ptr[n];
  dst.resize(static_cast<size_t>(n_edges));
  if (dst.capacity() - dst.size() > dst.size() / 8) dst.shrink_to_fit();
  data.edge_src.resize(static_cast<size_t>(n_edges));
#pragma omp parallel for schedule(static)
  for (int32_t i = 0; i < n; ++i) {
    std::fill(data.edge_src.begin() + row_ptr[i], data.edge_src.begin() + row_ptr[i + 1], i);
  }
}

// The sparse features: a class's band of columns carries the signal.
void draw_features(const SyntheticSpec& spec, Dataset& data) {
  const int32_t n = data.n_nodes;
  const int32_t n_classes = data.n_classes;
  // Row i: band_nnz distinct columns of its class's band [c*F/C, (c+1)*F/C),
  // then the rest distinct among the other columns, all by Floyd's sampling
  // (exactly k draws for k columns, whatever nnz/features is).
  const int32_t n_features = spec.features;
  const int32_t nnz = spec.nnz_per_row;
  const int32_t n_band = static_cast<int32_t>(band_nnz(spec));
  CsrMatrix& x = data.features;
  x.n_rows = n;
  x.n_cols = n_features;
  x.indptr.resize(static_cast<size_t>(n) + 1);
  x.indices.resize(static_cast<size_t>(n) * nnz);
  // The value normalize_features gives a row of nnz ones.
  x.values.assign(static_cast<size_t>(n) * nnz, 1.0f / static_cast<float>(nnz));
  const Stream band_rng(spec.seed, kBandStream);
  const Stream rest_rng(spec.seed, kRestStream);
#pragma omp parallel
  {
    std::vector<uint8_t> taken(static_cast<size_t>(n_features), 0);  // scratch per thread
    std::vector<int32_t> band(static_cast<size_t>(n_band));
#pragma omp for schedule(static)
    for (int32_t i = 0; i < n; ++i) {
      x.indptr[static_cast<size_t>(i) + 1] = (i + 1) * nnz;
      int32_t* row = x.indices.data() + static_cast<int64_t>(i) * nnz;
      const uint64_t base = static_cast<uint64_t>(i) * static_cast<uint64_t>(nnz);
      const int32_t c = data.labels[i];
      const int32_t lo = static_cast<int32_t>(int64_t{c} * n_features / n_classes);
      const int32_t width = static_cast<int32_t>(int64_t{c + 1} * n_features / n_classes) - lo;
      // Floyd: for j in [width - k, width), take a uniform t in [0, j], or j
      // itself when t is already taken; k distinct, uniformly.
      int32_t q = 0;
      for (int32_t j = width - n_band; j < width; ++j, ++q) {
        const int32_t t = lo + static_cast<int32_t>(band_rng.below(base + q, uint64_t(j) + 1));
        const int32_t col = taken[t] ? lo + j : t;
        taken[col] = 1;
        row[q] = col;
      }
      // The rest from the n_features - n_band columns not yet taken: Floyd on
      // their ranks, ranks mapped to columns by stepping over the band picks.
      std::copy(row, row + n_band, band.begin());
      std::sort(band.begin(), band.end());
      auto column_of_rank = [&](int32_t r) {
        for (int32_t b : band) {
          if (b > r) break;
          ++r;
        }
        return r;
      };
      const int32_t free_cols = n_features - n_band;
      for (int32_t j = free_cols - (nnz - n_band); j < free_cols; ++j, ++q) {
        const int32_t t =
            column_of_rank(static_cast<int32_t>(rest_rng.below(base + q, uint64_t(j) + 1)));
        const int32_t col = taken[t] ? column_of_rank(j) : t;
        taken[col] = 1;
        row[q] = col;
      }
      for (int32_t k = 0; k < nnz; ++k) taken[row[k]] = 0;
      std::sort(row, row + nnz);
    }
  }
  x.indptr[0] = 0;
}

// The split in node order: train_per_class of each class, then val, then test.
void assign_split(const SyntheticSpec& spec, Dataset& data) {
  const int32_t n = data.n_nodes;
  data.split.assign(static_cast<size_t>(n), 0);
  std::vector<int32_t> train_seen(static_cast<size_t>(data.n_classes), 0);
  for (int32_t i = 0; i < n; ++i) {
    if (train_seen[data.labels[i]] < spec.train_per_class) {
      ++train_seen[data.labels[i]];
      data.split[i] = kTrainBit;
    }
  }
  int32_t n_val = 0, n_test = 0;
  for (int32_t i = 0; i < n && (n_val < spec.val || n_test < spec.test); ++i) {
    if (data.split[i] != 0) continue;
    if (n_val < spec.val) {
      data.split[i] = kValBit;
      ++n_val;
    } else {
      data.split[i] = kTestBit;
      ++n_test;
    }
  }
}

}  // namespace

Dataset make_synthetic(const SyntheticSpec& spec) {
  validate(spec);
  Dataset data;
  data.name = "synthetic";
  data.n_nodes = static_cast<int32_t>(spec.nodes);
  data.n_features = spec.features;
  data.n_classes = spec.classes;
  draw_labels(spec, data);
  {
    const ClassIndex classes = index_classes(spec, data);
    draw_edges(spec, classes, data);
  }
  draw_features(spec, data);
  assign_split(spec, data);
  data.validate();
  return data;
}

}  // namespace gcn
