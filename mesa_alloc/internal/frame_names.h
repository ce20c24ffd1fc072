// Internal: names a code address, for allocation stacks in leak and error reports and for a
// trace's call sites. Not part of the public API.
//
// What it is for: turning a return address from capture_stack() into what a driver engineer
// reads — the function ("mesa::arena_resource::grow()") and where in which file
// (" (libvulkan_foo.so+0x1a2b3)", what addr2line and debuginfod take for a stripped driver).
//
// Why not absl::Symbolize: it keeps the object files open and reads them with lseek() then
// read(). A fork()ed child shares those descriptors' file offsets with its parent, so a child
// and a parent naming frames at once read each other's offsets: wrong bytes, and Abseil
// aborts the process without a message (a trace's call sites and a child's leak report do
// exactly this). A child that closes descriptors it does not know of (before an exec, say)
// leaves the cached numbers naming other files. Here every lookup opens the file, reads it
// with pread() (maps a large symbol table) and closes it: nothing is shared, with another
// process or another thread.
//
// What it costs: finding the file (file_mappings.h: a kept table of the process's file
// mappings, checked with a readlink), and for a symbol one pass over the file's symbol table
// (.symtab, else .dynsym; a table of 512 symbols or more is mapped for the pass, a smaller one
// read): about 25 microseconds in libc, 125 in libLLVM (46,000 exported symbols), paid once per
// trace call site and per report line; locating a frame, about 3.
// Neither allocates nor takes a lock, and both leave errno as they found it: they run in the
// guard pages' signal handler and under the callers' locks. About 3 KiB of stack to find a
// frame's name, 2 KiB to locate it, and for demangling 2 KiB plus about 240 bytes per nesting
// level of the name (print_debug_error checks what a signal stack has left). Not dladdr either: it
// takes the dynamic loader's lock, which a thread inside dlopen holds while a library's
// constructors run, and those may wait for a lock our caller holds.
//
// Example, for a return address `ra` of a captured stack:
//   char symbol[256], where[320];
//   // The call is the instruction before the return address: name that one.
//   if (!internal::frame_symbol(static_cast<const char *>(ra) - 1, symbol, sizeof symbol))
//     std::strcpy(symbol, "?");
//   internal::frame_location(ra, where, sizeof where);
//   // symbol "compile_shader()", where " (libdriver.so+0x4f1e)"
#ifndef MESA_ALLOC_INTERNAL_FRAME_NAMES_H_
#define MESA_ALLOC_INTERNAL_FRAME_NAMES_H_

#include <cstddef>

namespace mesa::internal {

// The function whose code holds `pc`, demangled as Abseil demangles (parameters left out:
// "mesa::debug_resource::do_allocate()"; mangled names up to 1,023 bytes), into `out`;
// truncated to `capacity`. False, and `out`
// empty, when no loaded file's symbol table has it (a JIT's code, a stripped file's static
// function, a data address). When the file that holds it cannot be opened (no descriptor left,
// say), "(name not read: <reason>)": such a frame is not a stripped one.
// On a signal stack whose lowest byte is `stack_low` (null: a thread's stack), a name whose
// demangling would not fit what is left (Abseil's demangler takes about 240 bytes per nesting
// level) is given mangled.
bool frame_symbol(const void *pc, char *out, std::size_t capacity,
                  const void *stack_low = nullptr) noexcept;

// " (file+0xaddress)" for a frame, as AddressSanitizer prints it: the address the file was
// linked at (through its program headers: PIE or not, lld's packed segments, a non-zero base),
// what addr2line and debuginfod need for a stripped driver, whose frames have no symbol, and
// what tells apart two call sites in one function. For code mapped from the middle of a file
// with no view of its ELF header (a JIT's memfd), the offset in the file. Empty if no loaded
// file holds `pc`; " (not located: /proc/self/maps: <reason>)" when the maps cannot be read
// (no file descriptor left) and the kept table does not know `pc`.
void frame_location(const void *pc, char *out, std::size_t capacity) noexcept;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_FRAME_NAMES_H_
