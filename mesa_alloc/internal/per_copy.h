// Internal: MESA_ALLOC_PER_COPY, for a variable defined in a header (an inline variable, a
// template's static member). Not part of the public API.
//
// What it is for: every copy of mesa_alloc in a process keeps its own state. Two Vulkan drivers
// that each link mesa_alloc statically are loaded side by side by the Vulkan loader
// (RTLD_LOCAL); a game may link its own copy as well. GCC gives a variable defined in a header
// STB_GNU_UNIQUE binding, and the dynamic linker merges such a symbol across every library of
// the process, RTLD_LOCAL or not: without this attribute the drivers would share one
// synchronized_pool_resource thread-cache table while numbering their pools separately, and one
// driver would take the other's blocks. Hidden visibility keeps the symbol out of the dynamic
// symbol table, so each library (each DSO) that defines it has its own.
//
// Where: on every variable a header defines that the library's code may take the address of
// or bind a reference to (state, tables, a constant passed to std::min at -O0). A constant
// only ever read by value emits no symbol and needs nothing. A static local of an inline
// function is merged the same way and cannot take the attribute: headers have none.
// tests/two_copies_test fails on any merged symbol of ours that a build emits.
//
// What it costs: nothing at run time. It is the reason header code that writes such a variable
// must be inline too: a program built with -fvisibility=hidden has its own copy, apart from the
// one in libmesa_alloc.so (synchronized_pool_resource.h, `enter`).
//
// Example:
//   MESA_ALLOC_PER_COPY static inline char kind_tag_ = 0;
#ifndef MESA_ALLOC_INTERNAL_PER_COPY_H_
#define MESA_ALLOC_INTERNAL_PER_COPY_H_

#define MESA_ALLOC_PER_COPY [[gnu::visibility("hidden")]]

#endif  // MESA_ALLOC_INTERNAL_PER_COPY_H_
