#include "mesa_alloc/internal/stack_trace.h"

#include <unwind.h>

#include <cstdint>

#include "absl/debugging/stacktrace.h"

namespace mesa::internal {
namespace {

// Room for the frames asked for and the walk's and the library's own above them.
constexpr int kOwnFrames = 16;

struct unwind_walk {
  void **walked;
  int limit;           // frames walked at most
  const void *caller;  // stop `max_depth` frames after the one returning here
  int max_depth;
  int depth = 0;
  int first = -1;  // index of that frame, once seen
};

_Unwind_Reason_Code record_frame(_Unwind_Context *context, void *arg) {
  auto *walk = static_cast<unwind_walk *>(arg);
  const std::uintptr_t ip = _Unwind_GetIP(context);
  if (ip == 0 || walk->depth == walk->limit) return _URC_END_OF_STACK;
  walk->walked[walk->depth] = reinterpret_cast<void *>(ip);
  if (walk->first < 0 && walk->walked[walk->depth] == walk->caller) walk->first = walk->depth;
  ++walk->depth;
  if (walk->first >= 0 && walk->depth - walk->first == walk->max_depth) return _URC_END_OF_STACK;
  return _URC_NO_REASON;
}

}  // namespace

int capture_stack(void **frames, int max_depth, const void *caller, bool unwind_tables) noexcept {
  if (max_depth > kMaxStackFrames) max_depth = kMaxStackFrames;
  void *walked[kMaxStackFrames + kOwnFrames];
  const int limit = max_depth + kOwnFrames;
  int depth;
  int first;  // without `caller` on the stack: from the caller of this function
  if (unwind_tables) {
    unwind_walk walk{walked, limit, caller, max_depth};
    _Unwind_Backtrace(&record_frame, &walk);
    depth = walk.depth;
    first = walk.first >= 0 ? walk.first : 1;  // the walk reports this function first
  } else {
    depth = absl::GetStackTrace(walked, limit, 0);  // from this function's caller
    first = 0;
    for (int i = 0; i < depth; ++i) {
      if (walked[i] == caller) {
        first = i;
        break;
      }
    }
  }
  int n = 0;
  for (int i = first; i < depth && n < max_depth; ++i) frames[n++] = walked[i];
  // Not a tail call: `first` above assumes this function's frame on the stack.
  __asm__ volatile("" ::: "memory");
  return n;
}

}  // namespace mesa::internal
