// Internal: a request its caller can do without. Not part of the public API.
//
// What it is for: some requests have a fallback when they are refused. The debug layer moves a
// block on every realloc, so that a stale pointer to the old one is caught, but keeps a shrinking
// block where it is when no new block comes; the arena asks for its next block at full size and
// then at half as much (allocate_or_smaller.h). A budget refusing such a request has not failed
// the program: tracking_resource does not count it in failed_allocations, and
// MESA_ALLOC_DEBUG=limit keeps its one refusal line for a refusal the program sees (it used to
// spend it on the debug layer's attempt to move a shrinking block, which then succeeded in
// place, and the program's real refusal after it came with no line). Only the budget's refusal
// is left uncounted: an upstream failure is counted as always (a fault layer's injected failure
// is the program's, and the debug layer passes it on).
//
// What it costs: a thread-local flag set and restored around the request; it is read only when
// a budget refuses.
//
// Example:
//   {
//     const internal::tentative_request tentative(size <= old_size);
//     fresh = allocate_from(size, alignment);   // a refusal here is absorbed below
//   }
//   if (fresh == nullptr && size <= old_size) return shrink_in_place(p, size);
#ifndef MESA_ALLOC_INTERNAL_TENTATIVE_REQUEST_H_
#define MESA_ALLOC_INTERNAL_TENTATIVE_REQUEST_H_

namespace mesa::internal {

class tentative_request {
 public:
  // Marks this thread's requests tentative while it lives, if `tentative` (or already so: one
  // made inside another's fallback attempt is tentative too).
  explicit tentative_request(bool tentative) noexcept;
  ~tentative_request();
  tentative_request(const tentative_request &) = delete;
  tentative_request &operator=(const tentative_request &) = delete;

  // Whether this thread's current request has a fallback if a budget refuses it.
  static bool active() noexcept;

 private:
  bool was_active_;
};

}  // namespace mesa::internal

#endif  // MESA_ALLOC_INTERNAL_TENTATIVE_REQUEST_H_
