// The UCX layer in a build without UCX (TE_WITH_UCX=OFF, or AUTO without libucx-dev).
#include "transport/ucx/ucx_context.h"

namespace te {
namespace {

Status NotBuilt() {
  return Status::NotSupported(
      "ucx: this build has no UCX (configure with -DTE_WITH_UCX=ON; needs libucx-dev or "
      "PKG_CONFIG_PATH naming a UCX)");
}

}  // namespace

bool UcxBuilt() { return false; }

Status QueryUcx(const UcxOptions&, UcxInfo* info) {
  *info = UcxInfo{};
  return NotBuilt();
}

Status UcxContext::Create(const UcxOptions&, std::unique_ptr<UcxContext>*) { return NotBuilt(); }

}  // namespace te
