#include "mesa_alloc/internal/free_list.h"

#include <cstdio>

#include "mesa_alloc/internal/diagnostics.h"

namespace mesa::internal {

bool refuse_double_free(const free_node *list, const free_node *node, std::size_t size,
                        const char *where) noexcept {
  for (; list != nullptr; list = list->next) {
    if (list != node) continue;
    char why[64];
    std::snprintf(why, sizeof why, "the %zu-byte block is already free", size);
    report_refused_free("double free", node, where, why);
    return true;
  }
  return false;
}

}  // namespace mesa::internal
