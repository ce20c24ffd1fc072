// Audit fixture: direct libc calls (with the poison opt-out) and the aligned, nothrow and array
// forms of global new/delete.
#define MESA_ALLOC_ALLOW_LIBC 1
#include <cstdlib>
#include <cstring>
#include <new>

void *bad_libc(std::size_t n) { return std::malloc(n); }

// Its own function, returning the copy: clang turns strdup of a literal into malloc and memcpy,
// and removes a strdup whose copy is freed unused, leaving the audit no strdup to name.
char *bad_copy(const char *text) { return strdup(text); }

void bad_release(void *p) { std::free(p); }

char *bad_aligned_array(std::size_t n) { return new (std::align_val_t(64)) char[n]; }

int *bad_nothrow() { return new (std::nothrow) int(7); }
