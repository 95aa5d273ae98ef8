#include "gcn/suggest.hpp"

#include <algorithm>

namespace gcn {

int edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1, 0));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string closest_choice(const std::string& word, const std::vector<std::string>& choices) {
  if (word.empty() || word.size() > 200) return "";
  // The choices that start with the word: one, or one that starts every
  // other (best-val of best-val and best-val-loss), is the suggestion.
  std::string prefixed;
  bool nested = true;
  for (const std::string& c : choices) {
    if (c.size() <= word.size() || c.compare(0, word.size(), word) != 0) continue;
    if (prefixed.empty()) {
      prefixed = c;
    } else if (c.compare(0, prefixed.size(), prefixed) == 0) {
      // a longer one that the one held starts
    } else if (prefixed.compare(0, c.size(), c) == 0) {
      prefixed = c;  // a shorter one that starts the one held
    } else {
      nested = false;
    }
  }
  if (!prefixed.empty() && nested && word.size() >= 2) return prefixed;
  const int limit = std::max(2, static_cast<int>(word.size()) / 3);
  std::string best;
  int best_d = limit + 1;
  for (const std::string& c : choices) {
    const int d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best_d <= limit ? best : "";
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices) {
  const std::string c = closest_choice(word, choices);
  return c.empty() ? "" : " (did you mean " + c + "?)";
}

}  // namespace gcn
