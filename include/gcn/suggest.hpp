// "Did you mean ...?" for a mistyped flag or value: the closest of the known
// words by edit distance, when it is close enough to be the likely intent.
#pragma once

#include <string>
#include <vector>

namespace gcn {

// The Levenshtein distance (insertions, deletions, substitutions, and
// transpositions of neighbours) between a and b.
int edit_distance(const std::string& a, const std::string& b);

// The choice closest to `word`, or "" when none is within a third of the
// word's length (at least 2 edits), or when `word` is a prefix of exactly one
// choice, that choice.
std::string closest_choice(const std::string& word, const std::vector<std::string>& choices);

// " (did you mean X?)" for the closest choice, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices);

}  // namespace gcn
