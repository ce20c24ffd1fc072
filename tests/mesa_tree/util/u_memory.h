/* Mesa's util/u_memory.h as docs/MIGRATING.md (section 1) has a Mesa tree change it: its guard
 * and its other includes kept, its names taken from mesa_alloc. (u_debug.h is left out: this
 * stand-in tree has none.) */
#ifndef U_MEMORY_H
#define U_MEMORY_H
#include "util/os_memory.h"
#define MESA_ALLOC_U_MEMORY_IS_MESAS 1
#include "mesa_alloc/u_memory.h"
#endif
