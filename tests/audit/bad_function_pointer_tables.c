/* Audit fixture: libc allocation functions taken by address into function-pointer tables (a C
 * driver's ops tables), never called. Only data relocations name them, in whichever section the
 * compiler picks: .data.rel (writable, PIC), .data.rel.ro (const, PIC), .data or .rodata
 * (without PIC), and per-object subsections of each with -fdata-sections. */
#include <stdlib.h>

struct alloc_ops {
  void *(*alloc)(size_t size);
  void (*release)(void *ptr);
};

struct alloc_ops writable_ops = {malloc, free};
const struct alloc_ops const_ops = {malloc, free};
void *(*const zeroed_table[])(size_t count, size_t size) = {calloc};
void *(*resize_table[])(void *ptr, size_t size) = {realloc};
