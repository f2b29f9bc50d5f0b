#pragma once
// Class subsets ("which classes did the old model see"), written in configs as
// `data.classes`. A spec selects class NAMES from a dataset's class list (the
// dataset's ClassMap order, which is sorted: numerically for IDX "0".."9",
// lexicographically for ImageFolder directories and Market-1501 "0002".."1501"):
//
//   all             every class
//   fraction:F      the first ceil(F * C) classes of the sorted list, 0 < F <= 1
//   ITEM[,ITEM...]  a union of items, each of which is
//     NAME          the class with exactly that name ("t-shirt", "7", "0002"); else, if
//                   NAME is an integer, the class whose name is that integer
//                   numerically ("2" selects "0002")
//     LO-HI         (only when no class is literally named "LO-HI") every class whose
//                   name is an integer n with LO <= n <= HI, e.g. "0-4" on IDX selects
//                   "0".."4"; a range must select at least one class
//
// The result keeps the dataset's order and has no duplicates. Errors (bad syntax,
// unknown class, empty range or result) name the spec and what was found.
#include <string>
#include <vector>

namespace dualtune::data {

/// Returns the selected names, in the order of `names`.
/// @param names the dataset's class names (ClassMap order)
/// @param spec  the subset spec described above
std::vector<std::string> select_classes(const std::vector<std::string>& names, const std::string& spec);

}  // namespace dualtune::data
