// Internal: builds the default allocator from the MESA_ALLOC_DEBUG environment variable when
// the default is first used. Not part of the public API.
#ifndef MESA_ALLOC_INTERNAL_DEFAULT_FROM_ENVIRONMENT_H_
#define MESA_ALLOC_INTERNAL_DEFAULT_FROM_ENVIRONMENT_H_

#include "mesa_alloc/mesa_alloc.h"

namespace mesa::internal {

// Reads MESA_ALLOC_DEBUG once and returns the table to use as the default: libc when it is
// unset or empty, otherwise the layers it names stacked over libc. Unknown words give one
// warning on stderr and are ignored. Called at most once per process.
const mesa_allocator *default_from_environment() noexcept;

// MESA_ALLOC_DEBUG's words, or null when it is unset or `secure`: a process in secure-execution
// mode (set-user-ID, set-group-ID or file capabilities: getauxval(AT_SECURE)) ignores it, with
// one line on stderr, as Mesa ignores its variables that write files there. trace=FILE would
// otherwise let the user who ran it create or overwrite any file with the process's privileges.
const char *debug_words_from_environment(bool secure) noexcept;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_DEFAULT_FROM_ENVIRONMENT_H_
