// Internal: which mapped file holds an address, for naming the frames of allocation stacks
// (frame_names.h). Not part of the public API.
//
// What it is for: the file, the part of it mapped there and where its ELF header is, read from
// /proc/self/maps, which is the one source that needs no lock (dladdr and dl_iterate_phdr take
// the dynamic loader's) and so may be read in the guard pages' signal handler.
//
// What it costs: the kernel writes /proc/self/maps anew for each read, a line per mapping, and a
// debug layer with guard pages adds two mappings per live block (a GPU driver's mapped buffer
// objects, more): 40,000 lines took 15 ms a read. So the executable file mappings, where frames
// are, are kept in a table (static storage, up to 1024 mappings and 32 KiB of paths); a hit is
// checked with one readlink of /proc/self/map_files/START-END (a dlclose and a dlopen may put
// another file where the table says), a few microseconds. An address the table does not hold
// (a library loaded since, a data address, a mapping past the table's room) costs one read of
// the maps, which fills the table again as it finds the address. Neither allocates nor takes a
// lock: the table has a try-lock, and a lookup that finds it busy (another thread naming
// frames, or the signal handler interrupting one) reads /proc/self/maps itself, as it does
// where map_files cannot be read (kernels before 4.3). A read that cannot open the maps (no
// descriptor left) leaves the table as it was. About 1.5 KiB of stack. Paths up to PATH_MAX; a
// read of the maps on the stack takes paths up to about 900 bytes.
//
// Example:
//   mesa::internal::file_mapping m;
//   const int fd = mesa::internal::find_file_mapping(pc, m, true);
//   if (m.found) { /* m.name: "libc.so.6"; byte pc - m.start + m.offset of the file */ }
//   if (fd >= 0) close(fd);
#ifndef MESA_ALLOC_INTERNAL_FILE_MAPPINGS_H_
#define MESA_ALLOC_INTERNAL_FILE_MAPPINGS_H_

#include <cstdint>

namespace mesa::internal {

struct file_mapping {
  bool found = false;
  // The file's start (its ELF header) is mapped, readable, at base up to base_stop. Not so for
  // code mapped from the middle of a file with no view of its start (a JIT's memfd): base is
  // then where the file's offset 0 would be.
  bool header_mapped = false;
  std::uintptr_t base = 0;
  std::uintptr_t base_stop = 0;
  std::uintptr_t start = 0;   // the mapping that holds the address
  std::uintptr_t offset = 0;  // and the file offset it maps
  char name[256] = {};        // the file's name, its path's last part (" (deleted)" kept)
  int error = 0;       // errno of an open of /proc/self/maps that failed (EMFILE, ...), else 0
  int open_error = 0;  // with open_file: errno of the file's own open that failed, else 0
};

// Fills `out` for the file mapping that holds `address`. With `open_file`, opens the file
// (O_RDONLY | O_CLOEXEC) unless it was deleted, and returns the descriptor for the caller to
// close; else, or when it cannot, -1. May change errno (frame_names.cc keeps it).
int find_file_mapping(std::uintptr_t address, file_mapping &out, bool open_file) noexcept;

// For the length of one report on this thread (a leak report, an error's stack): an address
// that a read of the maps found in no file mapping (a frame of a library unloaded since, a JIT's
// code, a stray frame of a frame-pointer walk) is remembered with the gap around it, and the
// report's later lookups in that gap read the maps no more (each such frame cost a read, twice:
// for its name and for its location). Outside a session every such lookup reads the maps
// again, as a library may be loaded there since. Sessions nest; a few gaps are kept.
class lookup_session {
 public:
  lookup_session() noexcept;
  ~lookup_session();
  lookup_session(const lookup_session &) = delete;
  lookup_session &operator=(const lookup_session &) = delete;
};

// How many times the process has read /proc/self/maps to find mappings (for tests).
std::uint64_t maps_reads() noexcept;

// How many shared libraries the process has unloaded so far (dl_iterate_phdr's dlpi_subs). A
// frame recorded in one of them is named, later, after whatever is loaded at its address since:
// a report compares this count with the one taken when its stacks began. Takes the dynamic
// loader's lock briefly: not in a signal handler.
unsigned long long libraries_unloaded() noexcept;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_FILE_MAPPINGS_H_
