// callback_validator: a correct caller produces no violation; a caller (or a table) breaking one
// rule produces exactly that violation, recorded with the call that caused it.
#include "mesa_alloc/callback_validator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mesa_alloc/fault_resource.h"

namespace {

using mesa::callback_validator;
using mesa::validator_op;
using mesa::validator_rule;

std::vector<validator_rule> rules_of(const callback_validator &v) {
  std::vector<validator_rule> rules;
  for (std::size_t i = 0; i < v.violation_count(); ++i) rules.push_back(v.violation(i).rule);
  return rules;
}

void *call_alloc(const mesa_allocator *t, std::size_t size, std::size_t alignment, int scope) {
  return t->alloc_fn(t->user_data, size, alignment, static_cast<mesa_alloc_scope>(scope));
}
void *call_realloc(const mesa_allocator *t, void *p, std::size_t size, std::size_t alignment,
                   int scope = MESA_ALLOC_SCOPE_OBJECT) {
  return t->realloc_fn(t->user_data, p, size, alignment, static_cast<mesa_alloc_scope>(scope));
}
void call_free(const mesa_allocator *t, void *p) { t->free_fn(t->user_data, p); }

TEST(CallbackValidator, CorrectCallerHasNoViolation) {
  callback_validator v(mesa_libc_allocator());
  const mesa_allocator *t = v.table();
  v.set_call("vkCreateThing");
  void *a = call_alloc(t, 100, 64, MESA_ALLOC_SCOPE_OBJECT);
  void *b = call_alloc(t, 0, 1, MESA_ALLOC_SCOPE_COMMAND);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_OBJECT), 100u);
  std::memset(a, 7, 100);
  a = call_realloc(t, a, 5000, 64);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 64, 0u);
  EXPECT_EQ(static_cast<unsigned char *>(a)[99], 7);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_OBJECT), 5000u);
  call_free(t, b);
  EXPECT_EQ(v.checkpoint(1u << MESA_ALLOC_SCOPE_COMMAND), 0u);
  void *c = call_realloc(t, nullptr, 32, 16, MESA_ALLOC_SCOPE_INSTANCE);  // realloc(NULL) allocs
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(call_realloc(t, c, 0, 16, MESA_ALLOC_SCOPE_INSTANCE), nullptr);  // size 0 frees
  call_free(t, a);
  call_free(t, nullptr);
  t->internal_alloc_fn(t->user_data, 4096, 0, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_EQ(v.internal_total(0, MESA_ALLOC_SCOPE_DEVICE), 4096);
  t->internal_free_fn(t->user_data, 4096, 0, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_EQ(v.checkpoint(0x1f), 0u);
  EXPECT_EQ(v.live_blocks(), 0u);
  EXPECT_TRUE(rules_of(v).empty());
}

// Each case breaks one caller-side rule once; the validator must record exactly that rule.
struct caller_case {
  const char *name;
  validator_rule rule;
  void (*run)(const mesa_allocator *t);
};

const caller_case kCallerCases[] = {
    {"scope", validator_rule::scope_out_of_range,
     [](const mesa_allocator *t) { EXPECT_EQ(call_alloc(t, 8, 8, 5), nullptr); }},
    {"negative_scope", validator_rule::scope_out_of_range,
     [](const mesa_allocator *t) { EXPECT_EQ(call_alloc(t, 8, 8, -1), nullptr); }},
    {"alignment", validator_rule::alignment_not_power_of_two,
     [](const mesa_allocator *t) { EXPECT_EQ(call_alloc(t, 8, 24, 1), nullptr); }},
    {"zero_alignment", validator_rule::alignment_not_power_of_two,
     [](const mesa_allocator *t) { EXPECT_EQ(call_alloc(t, 8, 0, 1), nullptr); }},
    {"realloc_alignment", validator_rule::realloc_alignment_changed,
     [](const mesa_allocator *t) {
       void *p = call_alloc(t, 8, 64, 1);
       p = call_realloc(t, p, 16, 16);
       call_free(t, p);
     }},
    {"realloc_unknown", validator_rule::realloc_unknown_pointer,
     [](const mesa_allocator *t) {
       int on_stack;
       EXPECT_EQ(call_realloc(t, &on_stack, 16, 16), nullptr);
     }},
    {"realloc_freed", validator_rule::realloc_freed_pointer,
     [](const mesa_allocator *t) {
       void *p = call_alloc(t, 8, 16, 1);
       call_free(t, p);
       EXPECT_EQ(call_realloc(t, p, 16, 16), nullptr);
     }},
    {"realloc_after_realloc_zero", validator_rule::realloc_freed_pointer,
     [](const mesa_allocator *t) {
       void *p = call_alloc(t, 8, 16, 1);
       EXPECT_EQ(call_realloc(t, p, 0, 16), nullptr);
       EXPECT_EQ(call_realloc(t, p, 16, 16), nullptr);
     }},
    {"free_unknown", validator_rule::free_unknown_pointer,
     [](const mesa_allocator *t) {
       int on_stack;
       call_free(t, &on_stack);
     }},
    {"double_free", validator_rule::free_freed_pointer,
     [](const mesa_allocator *t) {
       void *p = call_alloc(t, 8, 16, 1);
       call_free(t, p);
       call_free(t, p);
     }},
    {"free_after_realloc_zero", validator_rule::free_freed_pointer,
     [](const mesa_allocator *t) {
       void *p = call_alloc(t, 8, 16, 1);
       call_realloc(t, p, 0, 16);
       call_free(t, p);
     }},
    {"internal_type", validator_rule::internal_type_out_of_range,
     [](const mesa_allocator *t) {
       t->internal_alloc_fn(t->user_data, 64, 3, MESA_ALLOC_SCOPE_DEVICE);
     }},
    {"internal_scope", validator_rule::scope_out_of_range,
     [](const mesa_allocator *t) {
       t->internal_alloc_fn(t->user_data, 64, 0, static_cast<mesa_alloc_scope>(9));
     }},
    {"internal_negative", validator_rule::internal_total_negative,
     [](const mesa_allocator *t) {
       t->internal_alloc_fn(t->user_data, 64, 0, MESA_ALLOC_SCOPE_DEVICE);
       t->internal_free_fn(t->user_data, 128, 0, MESA_ALLOC_SCOPE_DEVICE);
       t->internal_alloc_fn(t->user_data, 64, 0, MESA_ALLOC_SCOPE_DEVICE);
     }},
};

TEST(CallbackValidator, EachBrokenCallerRuleGivesExactlyThatViolation) {
  for (const caller_case &c : kCallerCases) {
    SCOPED_TRACE(c.name);
    callback_validator v(mesa_libc_allocator());
    v.set_call(c.name);
    c.run(v.table());
    ASSERT_EQ(rules_of(v), std::vector<validator_rule>{c.rule});
    EXPECT_STREQ(v.violation(0).call.context, c.name);
    EXPECT_EQ(v.live_blocks(), 0u);  // nothing leaked by the check itself
  }
}

TEST(CallbackValidator, ViolationRecordsTheCall) {
  callback_validator v(mesa_libc_allocator());
  void *p = call_alloc(v.table(), 8, 64, MESA_ALLOC_SCOPE_CACHE);
  v.set_call("vkMergePipelineCaches");
  void *q = call_realloc(v.table(), p, 48, 8, MESA_ALLOC_SCOPE_CACHE);
  ASSERT_EQ(v.violation_count(), 1u);
  const mesa::validator_violation bad = v.violation(0);
  EXPECT_EQ(bad.rule, validator_rule::realloc_alignment_changed);
  EXPECT_EQ(bad.call.op, validator_op::realloc);
  EXPECT_EQ(bad.call.ptr, p);
  EXPECT_EQ(bad.call.size, 48u);
  EXPECT_EQ(bad.call.alignment, 8u);
  EXPECT_EQ(bad.call.scope, MESA_ALLOC_SCOPE_CACHE);
  EXPECT_EQ(bad.call.sequence, 1u);
  EXPECT_EQ(bad.expected, 64u);
  char line[256];
  bad.format(line, sizeof line);
  EXPECT_EQ(
      std::string(line).rfind("realloc_alignment_changed in vkMergePipelineCaches: realloc(", 0),
      0u)
      << line;
  call_free(v.table(), q);
}

// A pointer freed twice: the report names the call that freed it first.
TEST(CallbackValidator, DoubleFreeNamesTheEarlierFree) {
  callback_validator v(mesa_libc_allocator());
  void *p = call_alloc(v.table(), 8, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *other = call_alloc(v.table(), 8, 16, MESA_ALLOC_SCOPE_OBJECT);
  v.set_call("vkDestroyBuffer");
  call_free(v.table(), p);
  v.set_call("vkDestroyImage");
  call_free(v.table(), p);
  EXPECT_EQ(call_realloc(v.table(), p, 32, 16), nullptr);
  ASSERT_EQ(v.violation_count(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    // Calls: two allocs, the first free, then the two bad ones.
    EXPECT_EQ(v.violation(i).expected, v.violation(0).call.sequence - 1) << i;
    char line[256];
    v.violation(i).format(line, sizeof line);
    EXPECT_NE(std::string(line).find(" freed by #" + std::to_string(v.violation(i).expected)),
              std::string::npos)
        << line;
  }
  call_free(v.table(), other);
}

// The listener hears each violation as it happens, on the thread that broke the rule, before
// the call returns; null stops it.
TEST(CallbackValidator, ListenerHearsEachViolationWhenItHappens) {
  struct heard {
    std::vector<validator_rule> rules;
    std::vector<std::thread::id> threads;
    std::vector<std::string> lines;
  } h;
  callback_validator v(mesa_libc_allocator());
  v.set_listener(
      [](void *context, const mesa::validator_violation &violation) {
        auto *h = static_cast<heard *>(context);
        h->rules.push_back(violation.rule);
        h->threads.push_back(std::this_thread::get_id());
        char line[256];
        violation.format(line, sizeof line);
        h->lines.push_back(line);
      },
      &h);
  void *p = call_alloc(v.table(), 8, 16, MESA_ALLOC_SCOPE_OBJECT);
  call_free(v.table(), p);
  std::thread::id culprit;
  std::size_t heard_before_return = 0;
  std::thread t([&] {
    v.set_call("vkDestroyBuffer");
    call_free(v.table(), p);
    heard_before_return = h.rules.size();
    culprit = std::this_thread::get_id();
  });
  t.join();
  EXPECT_EQ(heard_before_return, 1u);
  ASSERT_EQ(h.rules, std::vector<validator_rule>{validator_rule::free_freed_pointer});
  EXPECT_EQ(h.threads[0], culprit);
  char line[256];
  v.violation(0).format(line, sizeof line);
  EXPECT_EQ(h.lines[0], line);

  v.set_listener(nullptr, nullptr);
  call_free(v.table(), p);
  EXPECT_EQ(v.violation_count(), 2u);
  EXPECT_EQ(h.rules.size(), 1u);
}

// Bookkeeping that runs out of memory when told to.
struct failing_bookkeeping final : std::pmr::memory_resource {
  bool fail = false;
  void *do_allocate(std::size_t n, std::size_t a) override {
    if (fail) throw std::bad_alloc();
    return std::pmr::new_delete_resource()->allocate(n, a);
  }
  void do_deallocate(void *p, std::size_t n, std::size_t a) override {
    std::pmr::new_delete_resource()->deallocate(p, n, a);
  }
  bool do_is_equal(const memory_resource &o) const noexcept override { return this == &o; }
};

// Bookkeeping out of memory when a violation is to be kept: the listener hears it, the list
// goes without it, and no exception leaves the C callback.
TEST(CallbackValidator, AViolationThatCannotBeKeptIsStillHeard) {
  failing_bookkeeping bookkeeping;
  int heard = 0;
  callback_validator v(mesa_libc_allocator(), &bookkeeping);
  v.set_listener([](void *n, const mesa::validator_violation &) { ++*static_cast<int *>(n); },
                 &heard);
  void *p = call_alloc(v.table(), 32, 16, MESA_ALLOC_SCOPE_OBJECT);
  call_free(v.table(), p);
  bookkeeping.fail = true;
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW(call_free(v.table(), p));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(heard, 1);
  EXPECT_EQ(v.violation_count(), 0u);
  EXPECT_NE(err.find("no memory to keep a violation"), std::string::npos) << err;
}

// Bookkeeping out of memory on the normal path: a fresh block that cannot be recorded goes back
// upstream and the call fails as an ordinary allocation failure; a realloc reuses the moved
// block's entry and needs no memory; a free forgets the freed pointer. Nothing is thrown through
// the C functions (the C callers would terminate).
TEST(CallbackValidator, BookkeepingOutOfMemoryFailsTheCallAndLeaksNothing) {
  failing_bookkeeping bookkeeping;
  static long live = 0;
  const mesa_allocator *libc = mesa_libc_allocator();
  const mesa_allocator counting = {
      const_cast<mesa_allocator *>(libc),
      [](void *l, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) -> void * {
        auto *t = static_cast<const mesa_allocator *>(l);
        void *p = t->alloc_fn(t->user_data, size, alignment, scope);
        live += p != nullptr;
        return p;
      },
      [](void *l, void *p, std::size_t size, std::size_t alignment,
         mesa_alloc_scope scope) -> void * {
        auto *t = static_cast<const mesa_allocator *>(l);
        void *r = t->realloc_fn(t->user_data, p, size, alignment, scope);
        live += (p == nullptr && r != nullptr) - (p != nullptr && size == 0);
        return r;
      },
      [](void *l, void *p) {
        auto *t = static_cast<const mesa_allocator *>(l);
        live -= p != nullptr;
        t->free_fn(t->user_data, p);
      },
      nullptr,
      nullptr};
  callback_validator v(&counting, &bookkeeping);
  void *kept = call_alloc(v.table(), 32, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(kept, nullptr);
  bookkeeping.fail = true;
  testing::internal::CaptureStderr();
  void *p = nullptr;
  EXPECT_NO_THROW(p = call_alloc(v.table(), 48, 16, MESA_ALLOC_SCOPE_OBJECT));
  EXPECT_EQ(p, nullptr);
  EXPECT_NO_THROW(p = call_realloc(v.table(), nullptr, 48, 16, MESA_ALLOC_SCOPE_OBJECT));
  EXPECT_EQ(p, nullptr);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("mesa_alloc: callback_validator: no memory to record a block"),
            std::string::npos)
      << err;
  EXPECT_EQ(live, 1) << "the blocks the validator could not record went back upstream";
  EXPECT_NO_THROW(kept = call_realloc(v.table(), kept, 4096, 16, MESA_ALLOC_SCOPE_OBJECT));
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(v.live_blocks(), 1u);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_OBJECT), 4096u);
  EXPECT_NO_THROW(call_free(v.table(), kept));
  EXPECT_EQ(live, 0);
  EXPECT_EQ(v.violation_count(), 0u);
  EXPECT_EQ(v.live_blocks(), 0u);
}

// A realloc that upstream fails leaves the block live. Upstream here allocates through the
// validated table while the realloc is out (so the table may rehash) and then leaves the
// bookkeeping without memory: the failed realloc throws nothing and the block's later free is a
// correct one, whatever the table's size.
callback_validator *g_reallocating = nullptr;
mesa::fault_resource *g_bookkeeping_faults = nullptr;
void *g_nested_block = nullptr;
const mesa_allocator kFailingReallocTable = {
    nullptr,
    [](void *, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) -> void * {
      const mesa_allocator *libc = mesa_libc_allocator();
      return libc->alloc_fn(libc->user_data, size, alignment, scope);
    },
    [](void *, void *, std::size_t, std::size_t, mesa_alloc_scope) -> void * {
      const mesa_allocator *t = g_reallocating->table();
      g_nested_block = call_alloc(t, 32, 8, MESA_ALLOC_SCOPE_OBJECT);
      g_bookkeeping_faults->fail_from(0);
      return nullptr;
    },
    [](void *, void *p) {
      const mesa_allocator *libc = mesa_libc_allocator();
      libc->free_fn(libc->user_data, p);
    },
    nullptr,
    nullptr};

TEST(CallbackValidator, AFailedReallocWithNoBookkeepingMemoryThrowsNothing) {
  for (int live = 1; live <= 64; ++live) {
    mesa::fault_resource bookkeeping(std::pmr::new_delete_resource());
    callback_validator v(&kFailingReallocTable, &bookkeeping);
    g_reallocating = &v;
    g_bookkeeping_faults = &bookkeeping;
    const mesa_allocator *t = v.table();
    std::vector<void *> blocks;
    for (int i = 0; i < live; ++i) blocks.push_back(call_alloc(t, 32, 8, MESA_ALLOC_SCOPE_OBJECT));
    testing::internal::CaptureStderr();
    void *r = &r;
    EXPECT_NO_THROW(r = call_realloc(t, blocks[0], 64, 8, MESA_ALLOC_SCOPE_OBJECT)) << live;
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(r, nullptr);
    bookkeeping.fail_nth(UINT64_MAX);
    EXPECT_EQ(err, "") << live;
    call_free(t, blocks[0]);
    EXPECT_EQ(v.violation_count(), 0u) << live;
    for (std::size_t i = 1; i < blocks.size(); ++i) call_free(t, blocks[i]);
    call_free(t, g_nested_block);
  }
}

// An upstream may call back into the validated table while serving a request (an application
// allocator that keeps its own records through the driver's default table): the validator
// does not hold its lock across upstream calls, so this completes instead of waiting for
// itself (the alarm turns a wait into a failure).
const mesa_allocator *g_validated = nullptr;
int g_reentries = 0;
void reenter() {
  static thread_local bool inside = false;
  if (inside || g_validated == nullptr) return;
  inside = true;
  ++g_reentries;
  void *note = call_alloc(g_validated, 16, 8, MESA_ALLOC_SCOPE_COMMAND);
  note = call_realloc(g_validated, note, 32, 8, MESA_ALLOC_SCOPE_COMMAND);
  call_free(g_validated, note);
  inside = false;
}
const mesa_allocator kReentrantTable = {
    nullptr,
    [](void *, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) -> void * {
      reenter();
      const mesa_allocator *libc = mesa_libc_allocator();
      return libc->alloc_fn(libc->user_data, size, alignment, scope);
    },
    [](void *, void *p, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) -> void * {
      reenter();
      const mesa_allocator *libc = mesa_libc_allocator();
      return libc->realloc_fn(libc->user_data, p, size, alignment, scope);
    },
    [](void *, void *p) {
      reenter();
      const mesa_allocator *libc = mesa_libc_allocator();
      libc->free_fn(libc->user_data, p);
    },
    nullptr,
    nullptr};

TEST(CallbackValidatorDeathTest, AnUpstreamMayCallBackIntoTheValidatedTable) {
  EXPECT_EXIT(
      {
        alarm(10);
        callback_validator v(&kReentrantTable);
        g_validated = v.table();
        void *p = call_alloc(v.table(), 64, 16, MESA_ALLOC_SCOPE_OBJECT);
        p = call_realloc(v.table(), p, 128, 16, MESA_ALLOC_SCOPE_OBJECT);
        call_free(v.table(), p);
        g_validated = nullptr;
        std::fprintf(stderr, "reentries %d violations %zu live %zu\n", g_reentries,
                     v.violation_count(), v.live_blocks());
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "reentries 3 violations 0 live 0");
}

// An application table whose realloc throws (g_realloc_throws) or waits for stage 2 before it
// reallocates (setting stage 1 when it starts), counting frees.
int g_upstream_frees = 0;
bool g_realloc_throws = false;
std::atomic<int> g_realloc_stage{0};
const mesa_allocator kStagedReallocTable = {
    nullptr,
    [](void *, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) -> void * {
      const mesa_allocator *libc = mesa_libc_allocator();
      return libc->alloc_fn(libc->user_data, size, alignment, scope);
    },
    [](void *, void *p, std::size_t size, std::size_t alignment, mesa_alloc_scope scope) -> void * {
      if (g_realloc_throws) throw std::runtime_error("application out of memory");
      g_realloc_stage = 1;
      while (g_realloc_stage != 2) std::this_thread::yield();
      const mesa_allocator *libc = mesa_libc_allocator();
      return libc->realloc_fn(libc->user_data, p, size, alignment, scope);
    },
    [](void *, void *p) {
      ++g_upstream_frees;
      const mesa_allocator *libc = mesa_libc_allocator();
      libc->free_fn(libc->user_data, p);
    },
    nullptr,
    nullptr};

// An application's realloc that leaves by an exception (or a longjmp) has not touched the
// block: it stays live, and the driver's later free of it is correct and reaches upstream, from
// another thread too.
TEST(CallbackValidator, AReallocUpstreamLeftByAnExceptionKeepsTheBlockLive) {
  callback_validator v(&kStagedReallocTable);
  const mesa_allocator *t = v.table();
  void *p = call_alloc(t, 48, 16, MESA_ALLOC_SCOPE_OBJECT);
  g_realloc_throws = true;
  EXPECT_THROW(call_realloc(t, p, 96, 16, MESA_ALLOC_SCOPE_OBJECT), std::runtime_error);
  g_realloc_throws = false;
  EXPECT_EQ(v.live_blocks(), 1u);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_OBJECT), 48u);
  EXPECT_EQ(v.checkpoint(1u << MESA_ALLOC_SCOPE_OBJECT), 1u);  // it is live, and says so
  g_upstream_frees = 0;
  std::thread([&] { call_free(t, p); }).join();
  EXPECT_EQ(g_upstream_frees, 1);
  EXPECT_EQ(rules_of(v), std::vector<validator_rule>{validator_rule::live_at_checkpoint});
  EXPECT_EQ(v.live_blocks(), 0u);
}

// While one thread's realloc of a block is with upstream, another thread's free of it is a race
// in the driver: reported as a free of an unknown pointer and not passed on. The realloc then
// completes as if nothing happened.
TEST(CallbackValidator, AFreeRacingAReallocOnAnotherThreadIsReported) {
  callback_validator v(&kStagedReallocTable);
  const mesa_allocator *t = v.table();
  void *p = call_alloc(t, 32, 8, MESA_ALLOC_SCOPE_OBJECT);
  g_realloc_stage = 0;
  void *grown = nullptr;
  std::thread reallocating([&] { grown = call_realloc(t, p, 64, 8, MESA_ALLOC_SCOPE_OBJECT); });
  while (g_realloc_stage != 1) std::this_thread::yield();
  g_upstream_frees = 0;
  call_free(t, p);
  g_realloc_stage = 2;
  reallocating.join();
  EXPECT_EQ(g_upstream_frees, 0);
  EXPECT_EQ(rules_of(v), std::vector<validator_rule>{validator_rule::free_unknown_pointer});
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(v.live_blocks(), 1u);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_OBJECT), 64u);
  call_free(t, grown);
  EXPECT_EQ(g_upstream_frees, 1);
  EXPECT_EQ(v.violation_count(), 1u);
}

// An application allocator that recycles the block freed last (a one-block free list, as a
// LIFO allocator's): its realloc moves the block and frees the old one first, then either
// records something of its own through the validated table (g_recycling_reenters), which gets
// the old block back, or lets another thread go on (stage 1) and waits for stage 2.
const mesa_allocator *g_recycling_validated = nullptr;
bool g_recycling_reenters = false;
void *g_recycled = nullptr;
void *g_recycling_record = nullptr;
void *recycle_or_allocate(std::size_t size) {
  void *p = g_recycled;
  g_recycled = nullptr;
  return p != nullptr ? p : std::aligned_alloc(16, (size + 15) & ~std::size_t{15});
}
void recycle(void *p) {
  if (g_recycled == nullptr)
    g_recycled = p;
  else
    std::free(p);
}
const mesa_allocator kRecyclingTable = {
    nullptr,
    [](void *, std::size_t size, std::size_t, mesa_alloc_scope) -> void * {
      return recycle_or_allocate(size);
    },
    [](void *, void *p, std::size_t size, std::size_t, mesa_alloc_scope) -> void * {
      if (p == nullptr) return recycle_or_allocate(size);
      void *moved = std::aligned_alloc(16, (size + 15) & ~std::size_t{15});
      std::memcpy(moved, p, 16);
      recycle(p);
      if (g_recycling_reenters) {
        g_recycling_record = call_alloc(g_recycling_validated, 16, 16, MESA_ALLOC_SCOPE_OBJECT);
      } else {
        g_realloc_stage = 1;
        while (g_realloc_stage != 2) std::this_thread::yield();
      }
      return moved;
    },
    [](void *, void *p) { recycle(p); },
    nullptr,
    nullptr};

// The application's own record, allocated through the validated table while the realloc is with
// it, gets the block the realloc has just moved from: correct (the block was freed first), and
// not reported. It was, as a block handed out twice, when the two calls were on one thread.
TEST(CallbackValidator, AReallocsUpstreamReusingTheOldBlockThroughTheTableIsNoViolation) {
  callback_validator v(&kRecyclingTable);
  g_recycling_validated = v.table();
  g_recycling_reenters = true;
  const mesa_allocator *t = v.table();
  void *p = call_alloc(t, 16, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *moved = call_realloc(t, p, 4000, 16, MESA_ALLOC_SCOPE_OBJECT);
  g_recycling_reenters = false;
  ASSERT_NE(moved, p);
  ASSERT_EQ(g_recycling_record, p) << "the record got the old block";
  EXPECT_EQ(rules_of(v), std::vector<validator_rule>{});
  EXPECT_EQ(v.live_blocks(), 2u);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_OBJECT), 4016u);
  call_free(t, g_recycling_record);
  call_free(t, moved);
  EXPECT_EQ(rules_of(v), std::vector<validator_rule>{});
  EXPECT_EQ(v.live_blocks(), 0u);
  std::free(g_recycled);
  g_recycled = nullptr;
}

// While one thread's realloc is with upstream, which has moved the block and freed the old one,
// another thread gets the old block (#2) and frees it (#3); its second free (#4) names #3 as the
// free before it, not the realloc (#1), whose bookkeeping came last.
TEST(CallbackValidator, ADoubleFreeNamesTheLatestFreeAfterARacingMovingRealloc) {
  callback_validator v(&kRecyclingTable);
  const mesa_allocator *t = v.table();
  void *p = call_alloc(t, 16, 16, MESA_ALLOC_SCOPE_OBJECT);  // #0
  g_realloc_stage = 0;
  void *moved = nullptr;
  std::thread reallocating([&] { moved = call_realloc(t, p, 4000, 16, MESA_ALLOC_SCOPE_OBJECT); });
  while (g_realloc_stage != 1) std::this_thread::yield();
  void *again = call_alloc(t, 16, 16, MESA_ALLOC_SCOPE_OBJECT);  // #2
  ASSERT_EQ(again, p);
  call_free(t, again);  // #3
  g_realloc_stage = 2;
  reallocating.join();
  call_free(t, again);  // #4
  ASSERT_EQ(rules_of(v), std::vector<validator_rule>{validator_rule::free_freed_pointer});
  EXPECT_EQ(v.violation(0).call.sequence, 4u);
  EXPECT_EQ(v.violation(0).expected, 3u) << "freed by #3";
  call_free(t, moved);
  EXPECT_EQ(v.live_blocks(), 0u);
  std::free(g_recycled);
  g_recycled = nullptr;
}

// A line longer than the listener's buffer on the stack (a long set_call label) reaches the C
// listener whole, as mesa_validator_format writes it; it was cut at 511 bytes.
std::string g_heard;
TEST(CallbackValidator, TheCListenerHearsALongLineWhole) {
  const mesa_allocator *t = mesa_validator_create(nullptr);
  ASSERT_NE(t, nullptr);
  const std::string label(700, 'L');
  mesa_validator_set_call(t, label.c_str());
  mesa_validator_set_listener(
      t, [](void *, const char *line) { g_heard = line; }, nullptr);
  int not_a_block;
  t->free_fn(t->user_data, &not_a_block);
  std::vector<char> line(2048);
  const int length = mesa_validator_format(t, 0, line.data(), line.size());
  EXPECT_GT(length, 700);
  EXPECT_EQ(g_heard, std::string(line.data()));
  EXPECT_EQ(g_heard.size(), static_cast<std::size_t>(length));
  mesa_validator_destroy(t);
}

TEST(CallbackValidator, CheckpointReportsLiveBlocksOfTheCheckedScopesOnly) {
  callback_validator v(mesa_libc_allocator());
  v.set_call("vkCmdDispatch");
  void *command = call_alloc(v.table(), 40, 8, MESA_ALLOC_SCOPE_COMMAND);
  void *object = call_alloc(v.table(), 50, 8, MESA_ALLOC_SCOPE_OBJECT);
  EXPECT_EQ(v.checkpoint(1u << MESA_ALLOC_SCOPE_COMMAND), 1u);
  ASSERT_EQ(rules_of(v), std::vector<validator_rule>{validator_rule::live_at_checkpoint});
  EXPECT_EQ(v.violation(0).call.ptr, command);
  EXPECT_EQ(v.violation(0).call.size, 40u);
  EXPECT_EQ(v.violation(0).call.scope, MESA_ALLOC_SCOPE_COMMAND);
  EXPECT_EQ(v.violation(0).expected, 0u) << "the call that allocated it";
  char line[256];
  v.violation(0).format(line, sizeof line);
  EXPECT_NE(std::string(line).find(" allocated by #0"), std::string::npos) << line;
  call_free(v.table(), command);
  call_free(v.table(), object);
  EXPECT_EQ(v.checkpoint(0x1f), 0u);
}

// A table (not the caller) breaking its side of the contract.
alignas(64) unsigned char g_arena[256];
void *misaligned_alloc(void *, std::size_t, std::size_t, mesa_alloc_scope) { return g_arena + 1; }
void *keeps_on_zero_realloc(void *, void *ptr, std::size_t, std::size_t, mesa_alloc_scope) {
  return ptr == g_arena + 1 ? g_arena + 64 : nullptr;
}
void ignore_free(void *, void *) {}
const mesa_allocator kBrokenTable = {nullptr,     misaligned_alloc, keeps_on_zero_realloc,
                                     ignore_free, nullptr,          nullptr};

TEST(CallbackValidator, BrokenTableResultsAreReported) {
  callback_validator v(&kBrokenTable);
  void *p = call_alloc(v.table(), 8, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_EQ(rules_of(v), std::vector<validator_rule>{validator_rule::misaligned_result});
  void *q = call_realloc(v.table(), p, 0, 16);
  EXPECT_EQ(q, g_arena + 64);
  ASSERT_EQ(rules_of(v),
            (std::vector<validator_rule>{validator_rule::misaligned_result,
                                         validator_rule::realloc_zero_returned_block}));
  // Each line names the block the table returned, not only the request (an API probe: the
  // lines said ptr=(nil) for the allocation and the freed pointer for the realloc).
  char line[256];
  char returned[64];
  v.violation(0).format(line, sizeof line);
  std::snprintf(returned, sizeof returned, " returned %p expected alignment 16",
                static_cast<void *>(g_arena + 1));
  EXPECT_NE(std::string(line).find(returned), std::string::npos) << line;
  v.violation(1).format(line, sizeof line);
  std::snprintf(returned, sizeof returned, " returned %p", static_cast<void *>(g_arena + 64));
  EXPECT_NE(std::string(line).find(returned), std::string::npos) << line;
}

// A table that hands one block to two owners (a broken free list, say) is caught at the second
// hand-out, which names the call that still owns the block.
alignas(64) unsigned char g_one_block[64];
void *same_block_alloc(void *, std::size_t, std::size_t, mesa_alloc_scope) { return g_one_block; }
const mesa_allocator kSameBlockTable = {nullptr,     same_block_alloc, keeps_on_zero_realloc,
                                        ignore_free, nullptr,          nullptr};

TEST(CallbackValidator, BlockHandedOutTwiceIsReported) {
  callback_validator v(&kSameBlockTable);
  v.set_call("vkCreateBuffer");
  EXPECT_EQ(call_alloc(v.table(), 24, 16, MESA_ALLOC_SCOPE_OBJECT), g_one_block);
  EXPECT_EQ(v.violation_count(), 0u);
  EXPECT_EQ(call_alloc(v.table(), 40, 16, MESA_ALLOC_SCOPE_DEVICE), g_one_block);  // call #1
  ASSERT_EQ(rules_of(v), std::vector<validator_rule>{validator_rule::result_already_live});
  EXPECT_EQ(v.violation(0).expected, 0u) << "the call that got the block first";
  char line[256];
  v.violation(0).format(line, sizeof line);
  EXPECT_NE(std::string(line).find("result_already_live in vkCreateBuffer: alloc("),
            std::string::npos)
      << line;
  EXPECT_NE(std::string(line).find(" #1 returned "), std::string::npos) << line;
  EXPECT_NE(std::string(line).find(" live since #0"), std::string::npos) << line;
  // Counted once, for its latest owner; freeing it leaves nothing live.
  EXPECT_EQ(v.live_blocks(), 1u);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_OBJECT), 0u);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_DEVICE), 40u);
  call_free(v.table(), g_one_block);
  EXPECT_EQ(v.live_blocks(), 0u);
  EXPECT_EQ(v.live_bytes(MESA_ALLOC_SCOPE_DEVICE), 0u);
  EXPECT_EQ(v.violation_count(), 1u);
}

// A pooled table (a LIFO free list) whose realloc moves the block and frees the old one before
// it returns: meanwhile, another thread's allocation may get the old address, which is correct.
// `hand_out_live` makes it a broken pool instead, whose realloc keeps the block in place while
// the other thread gets it too. The other thread's call is made from inside the realloc, so the
// timing is certain.
struct racing_pool {
  std::vector<void *> free_list;
  bool hand_out_live = false;
  const mesa_allocator *validator = nullptr;
  void *other_threads_block = nullptr;

  static void *alloc(void *self, std::size_t, std::size_t, mesa_alloc_scope) {
    auto *pool = static_cast<racing_pool *>(self);
    if (pool->free_list.empty()) return std::aligned_alloc(64, 4096);
    void *p = pool->free_list.back();
    pool->free_list.pop_back();
    return p;
  }
  static void free(void *self, void *p) {
    if (p != nullptr) static_cast<racing_pool *>(self)->free_list.push_back(p);
  }
  static void *realloc(void *self, void *p, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope) {
    auto *pool = static_cast<racing_pool *>(self);
    void *moved = p;
    if (pool->hand_out_live) {
      pool->free_list.push_back(p);  // the bug: still the caller's block
    } else {
      moved = alloc(self, size, alignment, scope);
      std::memcpy(moved, p, 16);
      free(self, p);
    }
    std::thread other([pool] {
      pool->other_threads_block = call_alloc(pool->validator, 32, 16, MESA_ALLOC_SCOPE_OBJECT);
    });
    other.join();
    return moved;
  }
  mesa_allocator table{this, alloc, realloc, free, nullptr, nullptr};
  ~racing_pool() {
    for (void *p : free_list) std::free(p);
  }
};

TEST(CallbackValidator, AnOldBlockAnotherThreadGetsDuringAMovingReallocIsNoViolation) {
  racing_pool pool;
  callback_validator v(&pool.table);
  pool.validator = v.table();
  void *p = call_alloc(v.table(), 16, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *moved = call_realloc(v.table(), p, 2048, 16);
  EXPECT_NE(moved, p);
  EXPECT_EQ(pool.other_threads_block, p) << "the other thread got the old block";
  EXPECT_EQ(v.violation_count(), 0u) << "a threads probe: result_already_live was reported";
  EXPECT_EQ(v.live_blocks(), 2u);
  call_free(v.table(), moved);
  call_free(v.table(), pool.other_threads_block);
  EXPECT_EQ(v.violation_count(), 0u);
  EXPECT_EQ(v.live_blocks(), 0u);
}

TEST(CallbackValidator, ABlockHandedOutWhileItsReallocKeptItIsReported) {
  racing_pool pool;
  pool.hand_out_live = true;
  callback_validator v(&pool.table);
  pool.validator = v.table();
  void *p = call_alloc(v.table(), 16, 16, MESA_ALLOC_SCOPE_OBJECT);  // #0
  EXPECT_EQ(call_realloc(v.table(), p, 8, 16), p);                   // #1, and the other's #2
  EXPECT_EQ(pool.other_threads_block, p);
  // The other thread's call got a block still live, and the realloc returned it too: both
  // hand-outs are said, the first as soon as the realloc showed it did not move the block.
  ASSERT_EQ(rules_of(v), (std::vector<validator_rule>{validator_rule::result_already_live,
                                                      validator_rule::result_already_live}));
  char line[256];
  v.violation(0).format(line, sizeof line);
  EXPECT_NE(std::string(line).find("alloc(ptr=(nil), size=32, alignment=16, scope=1, type=-1) #2"),
            std::string::npos)
      << line;
  EXPECT_NE(std::string(line).find(" live since #0"), std::string::npos) << line;
  v.violation(1).format(line, sizeof line);
  EXPECT_NE(std::string(line).find(" #1 returned "), std::string::npos) << line;
  EXPECT_NE(std::string(line).find(" live since #2"), std::string::npos) << line;
  call_free(v.table(), p);
}

// Notifications reach the upstream table's own observers.
int g_internal_calls = 0;
void count_internal(void *, std::size_t, int, mesa_alloc_scope) { ++g_internal_calls; }

TEST(CallbackValidator, ForwardsNotificationsUpstream) {
  mesa_allocator upstream = *mesa_libc_allocator();
  upstream.internal_alloc_fn = count_internal;
  upstream.internal_free_fn = count_internal;
  callback_validator v(&upstream);
  v.table()->internal_alloc_fn(v.table()->user_data, 10, 0, MESA_ALLOC_SCOPE_INSTANCE);
  v.table()->internal_free_fn(v.table()->user_data, 10, 0, MESA_ALLOC_SCOPE_INSTANCE);
  EXPECT_EQ(g_internal_calls, 2);
  EXPECT_EQ(v.violation_count(), 0u);
}

// A malformed notification is reported and, like any invalid request, not passed on: an
// application's callback may index its per-scope totals with the scope.
TEST(CallbackValidator, MalformedNotificationsAreNotForwarded) {
  mesa_allocator upstream = *mesa_libc_allocator();
  upstream.internal_alloc_fn = count_internal;
  upstream.internal_free_fn = count_internal;
  callback_validator v(&upstream);
  const int before = g_internal_calls;
  v.table()->internal_alloc_fn(v.table()->user_data, 64, 7, static_cast<mesa_alloc_scope>(99));
  v.table()->internal_free_fn(v.table()->user_data, 64, 0, static_cast<mesa_alloc_scope>(-1));
  EXPECT_EQ(g_internal_calls, before);
  EXPECT_EQ(rules_of(v), (std::vector<validator_rule>{validator_rule::scope_out_of_range,
                                                      validator_rule::internal_type_out_of_range,
                                                      validator_rule::scope_out_of_range}));
  // No expected value to show for these.
  char line[256];
  v.violation(0).format(line, sizeof line);
  EXPECT_EQ(std::string(line).find("expected"), std::string::npos) << line;
  // A well-formed free past zero is still forwarded (the upstream can count it), and says how
  // far below zero the total went.
  v.table()->internal_free_fn(v.table()->user_data, 8, 0, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_EQ(g_internal_calls, before + 1);
  ASSERT_EQ(v.violation_count(), 4u);
  EXPECT_EQ(v.violation(3).rule, validator_rule::internal_total_negative);
  v.violation(3).format(line, sizeof line);
  EXPECT_NE(std::string(line).find(" total now -8"), std::string::npos) << line;
}

// A realloc with another alignment is reported, and upstream still gets the block's own
// alignment, so the result keeps it.
TEST(CallbackValidator, ReallocWithAnotherAlignmentKeepsTheBlocksOwn) {
  callback_validator v(mesa_libc_allocator());
  void *p = call_alloc(v.table(), 64, 4096, MESA_ALLOC_SCOPE_OBJECT);
  void *q = call_realloc(v.table(), p, 100000, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q) % 4096, 0u);
  ASSERT_EQ(rules_of(v), std::vector<validator_rule>{validator_rule::realloc_alignment_changed});
  char line[256];
  v.violation(0).format(line, sizeof line);
  EXPECT_NE(std::string(line).find(" expected alignment 4096"), std::string::npos) << line;
  call_free(v.table(), q);
  EXPECT_EQ(v.violation_count(), 1u);
}

// The result of such a realloc is checked against the alignment the table was given (the
// block's own), not the one the driver asked for: no false misaligned_result for a table that
// did what it was asked, and a real one is still caught.
alignas(4096) unsigned char g_page_block[8192];
void *page_block_realloc(void *, void *, std::size_t, std::size_t, mesa_alloc_scope) {
  return g_page_block + 64;  // 64-aligned, not 4096-aligned
}
void *page_block_alloc(void *, std::size_t, std::size_t, mesa_alloc_scope) { return g_page_block; }
const mesa_allocator kPageTable = {nullptr,     page_block_alloc, page_block_realloc,
                                   ignore_free, nullptr,          nullptr};

TEST(CallbackValidator, AReallocResultIsCheckedAgainstTheForwardedAlignment) {
  callback_validator small(mesa_libc_allocator());
  void *p = call_alloc(small.table(), 64, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *q = call_realloc(small.table(), p, 128, 4096, MESA_ALLOC_SCOPE_OBJECT);  // asks for more
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(rules_of(small), std::vector<validator_rule>{validator_rule::realloc_alignment_changed})
      << "16 was forwarded and honoured";
  call_free(small.table(), q);

  callback_validator page(&kPageTable);
  void *b = call_alloc(page.table(), 64, 4096, MESA_ALLOC_SCOPE_OBJECT);
  (void)call_realloc(page.table(), b, 128, 16, MESA_ALLOC_SCOPE_OBJECT);  // asks for less
  EXPECT_EQ(rules_of(page), (std::vector<validator_rule>{validator_rule::realloc_alignment_changed,
                                                         validator_rule::misaligned_result}))
      << "4096 was forwarded, 64 came back";
}

TEST(CallbackValidatorDeathTest, AnIncompleteTableIsRefusedWhenTheValidatorIsMade) {
  mesa_allocator upstream = *mesa_libc_allocator();
  upstream.realloc_fn = nullptr;
  EXPECT_DEATH(callback_validator v(&upstream),
               "mesa_alloc: callback_validator: the table has no realloc_fn");
}

// Callbacks may be called from several threads at once (the validator takes a lock).
TEST(CallbackValidator, TwoThreadsAllocatingAndFreeing) {
  callback_validator v(mesa_libc_allocator());
  auto work = [&v] {
    std::vector<void *> blocks;
    for (int i = 0; i < 2000; ++i) {
      blocks.push_back(call_alloc(v.table(), 16 + i % 64, 16, i % MESA_ALLOC_SCOPE_COUNT));
      if (i % 3 == 0) blocks.back() = call_realloc(v.table(), blocks.back(), 200, 16, i % 5);
    }
    for (void *p : blocks) call_free(v.table(), p);
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(v.violation_count(), 0u);
  EXPECT_EQ(v.live_blocks(), 0u);
  EXPECT_EQ(v.checkpoint(0x1f), 0u);
}

TEST(CallbackValidator, RuleNames) {
  EXPECT_STREQ(mesa::validator_rule_name(validator_rule::scope_out_of_range), "scope_out_of_range");
  EXPECT_STREQ(mesa::validator_rule_name(validator_rule::realloc_zero_returned_block),
               "realloc_zero_returned_block");
  EXPECT_STREQ(mesa::validator_rule_name(validator_rule::result_already_live),
               "result_already_live");
  EXPECT_STREQ(mesa::validator_op_name(validator_op::internal_free), "internal_free");
}

}  // namespace
