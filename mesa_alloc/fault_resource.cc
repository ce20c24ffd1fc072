#include "mesa_alloc/fault_resource.h"

#include <cmath>
#include <cstdio>
#include <thread>

#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"

namespace mesa {
namespace {

std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr int kRereadsBeforeYield = 1000;

thread_local std::uint64_t injected_here = 0;  // see injected_on_this_thread()

}  // namespace

void fault_resource::set(mode m, std::uint64_t n, std::uint64_t seed,
                         std::uint64_t threshold) noexcept {
  std::uint64_t g = generation_.load(std::memory_order_relaxed);
  for (;;) {  // take the write side: from an even generation to the odd one after it
    if ((g & 1) != 0) {
      std::this_thread::yield();
      g = generation_.load(std::memory_order_relaxed);
    } else if (generation_.compare_exchange_weak(g, g + 1, std::memory_order_seq_cst,
                                                 std::memory_order_relaxed)) {
      break;
    }
  }
  // Sequentially consistent, as should_fail()'s numbering and generation read: an attempt
  // numbered at or after this origin then reads this odd generation or a later one.
  const std::uint64_t origin = attempts_.load(std::memory_order_seq_cst);
  // Release stores: a reader that sees any of them also sees the odd generation before them.
  // (Ordered stores and loads rather than fences, which ThreadSanitizer does not model.)
  std::uint64_t newest = newest_.load(std::memory_order_relaxed);
  if (settings_[newest % kKeptSettings].origin.load(std::memory_order_relaxed) != origin) {
    ++newest;
  }
  setting &s = settings_[newest % kKeptSettings];
  s.kind.store(static_cast<int>(m), std::memory_order_release);
  s.origin.store(origin, std::memory_order_release);
  s.n.store(n, std::memory_order_release);
  s.seed.store(seed, std::memory_order_release);
  s.threshold.store(threshold, std::memory_order_release);
  newest_.store(newest, std::memory_order_release);
  generation_.store(g + 2, std::memory_order_release);
}

void fault_resource::fail_nth(std::uint64_t n) noexcept { set(mode::nth, n, 0, 0); }

void fault_resource::fail_from(std::uint64_t n) noexcept { set(mode::from, n, 0, 0); }

void fault_resource::fail_every(std::uint64_t n) noexcept {
  set(n == 0 ? mode::none : mode::every, n, 0, 0);
}

void fault_resource::fail_random(double probability, std::uint64_t seed) noexcept {
  if (std::isnan(probability)) {
    std::fputs(
        "mesa_alloc: fault_resource: fail_random with a probability that is not a number; "
        "no failures\n",
        stderr);
  }
  if (!(probability > 0)) return set(mode::none, 0, 0, 0);
  // threshold / 2^64 == probability; probability >= 1 fails every attempt.
  const std::uint64_t threshold =
      probability >= 1 ? UINT64_MAX
                       : static_cast<std::uint64_t>(probability * 18446744073709551616.0);
  set(mode::random, 0, seed, threshold);
}

void fault_resource::fail_none() noexcept { set(mode::none, 0, 0, 0); }

bool fault_resource::should_fail() noexcept {
  // Numbered first, then judged by the setting in force at that number (see generation_).
  const std::uint64_t attempt = attempts_.fetch_add(1, std::memory_order_seq_cst);
  mode m;
  std::uint64_t origin, n, seed, threshold;
  // A change is a few stores, and the attempt numbered at its origin usually comes while they
  // are made: it rereads for a while before yielding, which could leave it off the CPU for a
  // whole time slice while other threads allocate (the writer may have been preempted itself).
  int rereads = 0;
  for (;;) {
    const std::uint64_t g = generation_.load(std::memory_order_seq_cst);
    if ((g & 1) != 0) {  // a change is being written
      if (rereads < kRereadsBeforeYield) {
        ++rereads;
      } else {
        std::this_thread::yield();
      }
      continue;
    }
    m = mode::none;  // numbered before every kept setting: judged by none
    origin = attempt;
    n = seed = threshold = 0;
    // Acquire loads: the generation is read again after them, not before.
    const std::uint64_t newest = newest_.load(std::memory_order_acquire);
    for (std::uint64_t back = 0; back < kKeptSettings && back <= newest; ++back) {
      const setting &s = settings_[(newest - back) % kKeptSettings];
      const std::uint64_t o = s.origin.load(std::memory_order_acquire);
      if (o > attempt) continue;
      m = static_cast<mode>(s.kind.load(std::memory_order_acquire));
      origin = o;
      n = s.n.load(std::memory_order_acquire);
      seed = s.seed.load(std::memory_order_acquire);
      threshold = s.threshold.load(std::memory_order_acquire);
      break;
    }
    if (generation_.load(std::memory_order_relaxed) == g) break;
  }
  const std::uint64_t k = attempt - origin;
  bool fail = false;
  switch (m) {
    case mode::nth:
      fail = k == n;
      break;
    case mode::from:
      fail = k >= n;
      break;
    case mode::every:
      fail = (k + 1) % n == 0;  // n > 0: fail_every(0) sets mode::none
      break;
    case mode::random:
      fail = mix(seed ^ mix(k)) < threshold;
      break;
    case mode::none:
      break;
  }
  if (fail) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    ++injected_here;
  }
  return fail;
}

std::uint64_t fault_resource::injected_on_this_thread() noexcept { return injected_here; }

void *fault_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (internal::request_refused(bytes, alignment))
    internal::refuse_request("fault_resource::allocate", alignment);
  if (should_fail()) throw std::bad_alloc();
  return upstream_->allocate(bytes, alignment);
}

void fault_resource::do_deallocate(void *p, std::size_t bytes, std::size_t alignment) {
  upstream_->deallocate(p, bytes, alignment);
}

bool fault_resource::do_is_equal(const std::pmr::memory_resource &other) const noexcept {
  return this == &other;
}

}  // namespace mesa
