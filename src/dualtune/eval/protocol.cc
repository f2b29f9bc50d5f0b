#include "dualtune/eval/protocol.h"

#include "dualtune/util/error.h"

namespace dualtune::eval {

Protocol parse_protocol(const std::string& name) {
  if (name == "loo") return Protocol::kLeaveOneOut;
  if (name == "reid") return Protocol::kReid;
  DT_THROW("protocol: expected 'loo' or 'reid', found '", name, "'");
}

const char* protocol_name(Protocol p) { return p == Protocol::kLeaveOneOut ? "loo" : "reid"; }

void gallery_roles(Protocol protocol, int64_t qi, int64_t ql, int64_t qc, int64_t ng, const int64_t* glabels,
                   const int64_t* gcams, Role* roles) {
  for (int64_t j = 0; j < ng; ++j) {
    const int64_t gl = glabels[j];
    Role r = gl < 0 ? Role::kExcluded : (gl == ql ? Role::kPositive : Role::kNegative);
    if (protocol == Protocol::kLeaveOneOut) {
      if (j == qi) r = Role::kExcluded;
    } else if (gl == ql && gcams[j] == qc) {
      r = Role::kExcluded;
    }
    roles[j] = r;
  }
}

}  // namespace dualtune::eval
