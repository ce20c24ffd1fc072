// Internal: the calling thread's stack as return addresses, for allocation and error reports.
// Not part of the public API.
//
// What it is for: debug_resource's allocation stacks. Two ways to walk:
//   - frame pointers (absl::GetStackTrace): a few nanoseconds a frame, but the walk loses its
//     way at the first caller built without them (-fomit-frame-pointer, GCC's default at -O1
//     and up, as in most distributions' Mesa): the frames above are missing or wrong, so a
//     leak often shows one frame;
//   - unwind tables (_Unwind_Backtrace over .eh_frame, which x86-64 and i386 code carries by
//     default): complete without frame pointers, and several times slower (README, "Measured
//     costs").
// Neither allocates. frame_names.h names the frames. The stack starts at the frame that `caller`
// returns into, whatever the library's own frames between (inlined, tail calls, either walk).
// During a C API call, `caller` is the C API's caller (api_caller.h), so its frames are left out
// too.
//
// Example, in an allocating entry point:
//   void *frames[16];
//   const int depth = internal::capture_stack(frames, 16, __builtin_return_address(0),
//                                             /*unwind_tables=*/true);
//   // frames[0] is the return address into the code that called the entry point
#ifndef MESA_ALLOC_INTERNAL_STACK_TRACE_H_
#define MESA_ALLOC_INTERNAL_STACK_TRACE_H_

namespace mesa::internal {

inline constexpr int kMaxStackFrames = 48;

// Up to `max_depth` (at most kMaxStackFrames) return addresses into `frames`, innermost first,
// from the frame `caller` returns into; returns how many were stored. If no frame of the stack
// returns there (the walk lost its way in frames without frame pointers), just `caller`.
[[gnu::noinline]] int capture_stack(void **frames, int max_depth, const void *caller,
                                    bool unwind_tables) noexcept;

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_STACK_TRACE_H_
