#include "mesa_alloc/internal/stack_trace.h"

#include <unwind.h>

#include <cstdint>

#include "absl/debugging/stacktrace.h"

namespace mesa::internal {
namespace {

// Room for the frames asked for and the walk's and the library's own above them (at most nine:
// capture_stack, then e.g. call_site, record, logged_alloc, the C table's alloc,
// malloc_through_table, mesa_malloc when not a tail call, mesa_strndup and mesa_strdup).
constexpr int kOwnFrames = 12;

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
  if (ip == 0 || walk->depth >= walk->limit) return _URC_END_OF_STACK;
  walk->walked[walk->depth] = reinterpret_cast<void *>(ip);
  if (walk->first < 0 && walk->walked[walk->depth] == walk->caller) walk->first = walk->depth;
  ++walk->depth;
  if (walk->first >= 0 && walk->depth - walk->first == walk->max_depth) return _URC_END_OF_STACK;
  return _URC_NO_REASON;
}

int index_of(void *const *walked, int depth, const void *frame) noexcept {
  for (int i = 0; i < depth; ++i) {
    if (walked[i] == frame) return i;
  }
  return -1;
}

}  // namespace

int capture_stack(void **frames, int max_depth, const void *caller, bool unwind_tables) noexcept {
  max_depth = max_depth < 0 ? 0 : max_depth > kMaxStackFrames ? kMaxStackFrames : max_depth;
  if (max_depth == 0) return 0;
  void *walked[kMaxStackFrames + kOwnFrames];
  const int limit = max_depth + kOwnFrames;
  int depth, first;
  if (unwind_tables) {
    unwind_walk walk{walked, limit, caller, max_depth};
    _Unwind_Backtrace(&record_frame, &walk);
    depth = walk.depth;
    first = walk.first;  // found during the walk, which stops once it has enough after it
  } else {
    depth = absl::GetStackTrace(walked, limit, 0);
    first = index_of(walked, depth, caller);
  }
  if (first < 0) {
    // The walk lost its way in the library's own frames (built without frame pointers): the
    // frames it found are not the caller's, and `caller` is the one known to be right.
    frames[0] = const_cast<void *>(caller);
    return 1;
  }
  int n = 0;
  for (int i = first; i < depth && n < max_depth; ++i) frames[n++] = walked[i];
  return n;
}

}  // namespace mesa::internal
