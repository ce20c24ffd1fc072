// upstream_exempt — marks calls a counting mesa_allocator makes to its own (libc) upstream, so a
// test that replaces global operator new/delete and malloc/free does not count them.
//
// What it is for: the run-time proof tests (global_allocation_counter.h) count every global
// allocation made while armed, except those made on this thread inside an upstream_exempt
// scope. A counting table opens one around each call to its libc upstream, the root of the
// stack under test.
//
// What it costs: one thread_local increment and decrement. Header only, no replacement linked:
// tables that use it stay usable in ordinary tests.
//
// Example:
//   {
//     test::upstream_exempt exempt;
//     p = libc->alloc_fn(libc->user_data, size, alignment, scope);
//   }
#ifndef MESA_ALLOC_TESTS_SUPPORT_UPSTREAM_EXEMPT_H_
#define MESA_ALLOC_TESTS_SUPPORT_UPSTREAM_EXEMPT_H_

namespace test {

class upstream_exempt {
 public:
  upstream_exempt() noexcept { ++depth(); }
  ~upstream_exempt() { --depth(); }
  upstream_exempt(const upstream_exempt &) = delete;
  upstream_exempt &operator=(const upstream_exempt &) = delete;

  // Non-zero while this thread is inside an upstream_exempt scope.
  static int &depth() noexcept {
    static thread_local int d = 0;
    return d;
  }
};

}  // namespace test

#endif  // MESA_ALLOC_TESTS_SUPPORT_UPSTREAM_EXEMPT_H_
