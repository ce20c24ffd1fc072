/* Mesa's util/os_memory.h as docs/MIGRATING.md (section 1) has a Mesa tree change it: its
 * guard kept, its os_* names taken from mesa_alloc instead of libc. */
#ifndef _OS_MEMORY_H_
#define _OS_MEMORY_H_
#define MESA_ALLOC_U_MEMORY_IS_MESAS 1
#include "mesa_alloc/u_memory.h"
#endif
