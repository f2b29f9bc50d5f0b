#pragma once
// Evaluation protocols: which gallery items a query is ranked against.
//   leave-one-out (loo): query set and gallery set are the same items (possibly
//     features of different models, index-aligned); item i is excluded from its own
//     gallery. Classification datasets: every item is a query against all others.
//   reid (Market-1501 rule): separate query and gallery sets; gallery items with the
//     query's label AND camera are excluded, label -1 gallery items are junk
//     (excluded).
// In both, a query with label -1 is skipped and gallery label -1 is junk.
#include <cstdint>
#include <string>

#include "dualtune/eval/ranking.h"

namespace dualtune::eval {

enum class Protocol { kLeaveOneOut, kReid };

/// "loo" | "reid"; throws dualtune::Error otherwise.
Protocol parse_protocol(const std::string& name);
const char* protocol_name(Protocol p);

/// Fills roles (size ng) for query index qi with label ql and camera qc.
/// @param glabels, gcams  gallery labels / cameras, size ng
void gallery_roles(Protocol protocol, int64_t qi, int64_t ql, int64_t qc, int64_t ng, const int64_t* glabels,
                   const int64_t* gcams, Role* roles);

}  // namespace dualtune::eval
