#include "mesa_alloc/internal/free_list.h"

#include <cstdio>

#include "mesa_alloc/internal/diagnostics.h"

namespace mesa::internal {

bool on_free_list(const free_node *list, const free_node *node) noexcept {
  for (; list != nullptr; list = list->next)
    if (list == node) return true;
  return false;
}

void report_freed_block(const char *what, const void *node, std::size_t size, const char *where,
                        const char *how) noexcept {
  char why[256];
  std::snprintf(why, sizeof why, "the %zu-byte block is already free%s", size, how);
  report_refused_free(what, node, where, why);
}

bool refuse_double_free(const free_node *list, const free_node *node, std::size_t size,
                        const char *where) noexcept {
  if (!on_free_list(list, node)) return false;
  report_freed_block("double free", node, size, where);
  return true;
}

}  // namespace mesa::internal
