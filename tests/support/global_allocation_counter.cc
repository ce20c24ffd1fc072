#include "tests/support/global_allocation_counter.h"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

std::atomic<bool> armed{false};
std::atomic<long> new_calls{0};
std::atomic<long> delete_calls{0};
std::atomic<long> malloc_calls{0};
std::atomic<long> free_calls{0};

bool counting() noexcept {
  return armed.load(std::memory_order_relaxed) && test::upstream_exempt::depth() == 0;
}

void count(std::atomic<long> &counter, const void *p) noexcept {
  if (p != nullptr && counting()) counter.fetch_add(1, std::memory_order_relaxed);
}

void *new_block(std::size_t size) noexcept {
  if (counting()) new_calls.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}

void *new_aligned_block(std::size_t size, std::align_val_t alignment) noexcept {
  if (counting()) new_calls.fetch_add(1, std::memory_order_relaxed);
  void *p = nullptr;
  const auto a = static_cast<std::size_t>(alignment);
  return posix_memalign(&p, a < sizeof(void *) ? sizeof(void *) : a, size == 0 ? 1 : size) == 0
             ? p
             : nullptr;
}

void *new_or_throw(void *p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void delete_block(void *p) noexcept {
  count(delete_calls, p);
  std::free(p);
}

}  // namespace

// Global operator new/delete: every form.
void *operator new(std::size_t n) { return new_or_throw(new_block(n)); }
void *operator new[](std::size_t n) { return new_or_throw(new_block(n)); }
void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return new_block(n); }
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return new_block(n); }
void *operator new(std::size_t n, std::align_val_t a) {
  return new_or_throw(new_aligned_block(n, a));
}
void *operator new[](std::size_t n, std::align_val_t a) {
  return new_or_throw(new_aligned_block(n, a));
}
void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_aligned_block(n, a);
}
void *operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_aligned_block(n, a);
}
void operator delete(void *p) noexcept { delete_block(p); }
void operator delete[](void *p) noexcept { delete_block(p); }
void operator delete(void *p, std::size_t) noexcept { delete_block(p); }
void operator delete[](void *p, std::size_t) noexcept { delete_block(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { delete_block(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { delete_block(p); }
void operator delete(void *p, std::align_val_t) noexcept { delete_block(p); }
void operator delete[](void *p, std::align_val_t) noexcept { delete_block(p); }
void operator delete(void *p, std::size_t, std::align_val_t) noexcept { delete_block(p); }
void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { delete_block(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  delete_block(p);
}
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  delete_block(p);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // test::kReplacesMalloc
// glibc's own implementations, under their exported internal names.
extern "C" {
void *__libc_malloc(std::size_t);
void *__libc_calloc(std::size_t, std::size_t);
void *__libc_realloc(void *, std::size_t);
void __libc_free(void *);
void *__libc_memalign(std::size_t, std::size_t);
void *__libc_valloc(std::size_t);
void *__libc_pvalloc(std::size_t);

void *malloc(std::size_t n) {
  void *p = __libc_malloc(n);
  count(malloc_calls, p);
  return p;
}
void *calloc(std::size_t n, std::size_t size) {
  void *p = __libc_calloc(n, size);
  count(malloc_calls, p);
  return p;
}
void *realloc(void *old, std::size_t n) {
  void *p = __libc_realloc(old, n);
  count(malloc_calls, p != nullptr ? p : old);
  return p;
}
void *reallocarray(void *old, std::size_t n, std::size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  return realloc(old, n * size);
}
void free(void *p) {
  count(free_calls, p);
  __libc_free(p);
}
void *memalign(std::size_t alignment, std::size_t n) {
  void *p = __libc_memalign(alignment, n);
  count(malloc_calls, p);
  return p;
}
void *aligned_alloc(std::size_t alignment, std::size_t n) { return memalign(alignment, n); }
int posix_memalign(void **out, std::size_t alignment, std::size_t n) {
  if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void *p = memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void *valloc(std::size_t n) {
  void *p = __libc_valloc(n);
  count(malloc_calls, p);
  return p;
}
void *pvalloc(std::size_t n) {
  void *p = __libc_pvalloc(n);
  count(malloc_calls, p);
  return p;
}
}  // extern "C"
#endif

namespace test {

global_allocation_counter::global_allocation_counter() noexcept {
  new_calls = delete_calls = malloc_calls = free_calls = 0;
  armed = true;
}

global_allocation_counter::~global_allocation_counter() { armed = false; }

global_allocation_counts global_allocation_counter::counts() const noexcept {
  global_allocation_counts c;
  c.news = new_calls.load();
  c.deletes = delete_calls.load();
  c.mallocs = malloc_calls.load();
  c.frees = free_calls.load();
  return c;
}

global_allocation_counts global_allocation_counter::close() noexcept {
  armed = false;
  return counts();
}

}  // namespace test
