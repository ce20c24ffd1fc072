/* The part of Mesa 22's util/macros.h that meets mesa_alloc/u_memory.h: its own definition of
 * CACHE_LINE_SIZE, which most Mesa files reach after util/u_memory.h. */
#ifndef UTIL_MACROS_H
#define UTIL_MACROS_H
#define CACHE_LINE_SIZE 64
#endif
