/* Audit fixture: glibc entry points that allocate under another name or hand back memory the
 * caller must free(): glibc's exported allocators (__libc_malloc & co.), the __strdup older
 * headers make of strdup at -O2, and functions that return malloc'd memory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <execinfo.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern char *__strdup(const char *text);

void *bad_libc_malloc(size_t size) { return __libc_malloc(size); }

void bad_libc_free(void *ptr) { __libc_free(ptr); }

char *bad_old_strdup(const char *text) { return __strdup(text); }

char *bad_canonical_path(const char *path) { return canonicalize_file_name(path); }

char **bad_symbol_names(void *const *frames, int count) { return backtrace_symbols(frames, count); }

int bad_list_directory(const char *dir, struct dirent ***entries) {
  return scandir(dir, entries, NULL, alphasort);
}

char *bad_temporary_name(void) { return tempnam(NULL, "mesa"); }
