// The pieces of vk_alloc_audit in-process: the recorder's attribution (no Vulkan needed) and one
// audited run of the workload on lavapipe with a failure injected by the recorder.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mesa_alloc/callback_validator.h"
#include "tools/vk_audit_caller.h"
#include "tools/vk_audit_recorder.h"
#include "tools/vk_audit_run.h"

namespace {

using vk_audit::recorder;

void *alloc(const mesa_allocator *t, std::size_t size, std::size_t alignment, int scope) {
  return t->alloc_fn(t->user_data, size, alignment, static_cast<mesa_alloc_scope>(scope));
}

TEST(Recorder, AttributesToTheCurrentCallAndScope) {
  recorder rec(mesa_libc_allocator());
  const mesa_allocator *t = rec.table();
  rec.set_call("vkCreateInstance", "instance");
  void *a = alloc(t, 100, 8, MESA_ALLOC_SCOPE_INSTANCE);
  void *b = alloc(t, 10, 64, MESA_ALLOC_SCOPE_COMMAND);
  b = t->realloc_fn(t->user_data, b, 30, 64, MESA_ALLOC_SCOPE_COMMAND);
  t->free_fn(t->user_data, b);
  rec.set_call("vkDestroyInstance", "teardown");
  t->free_fn(t->user_data, a);
  rec.snapshot();
  t->internal_alloc_fn(t->user_data, 4096, 0, MESA_ALLOC_SCOPE_DEVICE);

  EXPECT_EQ(rec.attempts(), 3u);  // two allocs and one growing realloc
  EXPECT_EQ(rec.total(MESA_ALLOC_SCOPE_INSTANCE).allocations, 1u);
  EXPECT_EQ(rec.total(MESA_ALLOC_SCOPE_COMMAND).reallocations, 1u);
  EXPECT_EQ(rec.total(MESA_ALLOC_SCOPE_COMMAND).frees, 1u);
  EXPECT_EQ(rec.total(MESA_ALLOC_SCOPE_COMMAND).bytes, 40u);
  EXPECT_EQ(rec.peak_bytes(MESA_ALLOC_SCOPE_INSTANCE), 100);
  EXPECT_EQ(rec.peak_bytes(MESA_ALLOC_SCOPE_COMMAND), 30);
  const std::vector<vk_audit::call_counts> calls = rec.calls();
  ASSERT_EQ(calls.size(), 3u);  // "(outside any call)" and the two
  EXPECT_EQ(calls[1].call, "vkCreateInstance");
  EXPECT_EQ(calls[1].scope[MESA_ALLOC_SCOPE_INSTANCE].allocations, 1u);
  EXPECT_EQ(calls[1].scope[MESA_ALLOC_SCOPE_COMMAND].frees, 1u);
  EXPECT_EQ(calls[2].phase, "teardown");
  EXPECT_EQ(calls[2].scope[MESA_ALLOC_SCOPE_INSTANCE].frees, 1u);
  ASSERT_EQ(rec.snapshots().size(), 1u);
  EXPECT_EQ(rec.snapshots()[0].call, "vkDestroyInstance");
  EXPECT_EQ(rec.snapshots()[0].live_blocks, 0);
  EXPECT_EQ(rec.timeline().size(), 5u);  // one sample per event
  EXPECT_EQ(rec.internal(MESA_ALLOC_SCOPE_DEVICE).bytes, 4096);
  const auto alignments = rec.alignments();
  ASSERT_EQ(alignments.size(), 2u);
  EXPECT_EQ(alignments[0], (std::pair<std::size_t, std::uint64_t>{8, 1}));
  EXPECT_EQ(alignments[1], (std::pair<std::size_t, std::uint64_t>{64, 2}));
}

#if defined(__x86_64__)
// A driver function built without frame pointers, as distributions build Mesa: %rbp holds data
// (here 0x10) when it calls the table's alloc_fn(user_data, size, 16, OBJECT).
extern "C" void *call_alloc_with_rbp_as_data(const mesa_allocator *table, std::size_t size);
asm(R"(
    .text
    .globl call_alloc_with_rbp_as_data
    .type call_alloc_with_rbp_as_data, @function
call_alloc_with_rbp_as_data:
    push %rbp
    push %rbx
    sub $8, %rsp
    mov %rdi, %rax
    mov (%rax), %rdi
    mov $16, %rdx
    mov $1, %ecx
    mov $0x10, %rbp
    call *8(%rax)
    add $8, %rsp
    pop %rbx
    pop %rbp
    ret
    .size call_alloc_with_rbp_as_data, .-call_alloc_with_rbp_as_data
)");

// The recorder names the calling module without following the caller's frame pointer (it read
// *(%rbp + 8) of its caller, a crash at address 0x18 here), whether the driver calls its table
// directly or through caller_entry and the validator, as vk_alloc_audit stacks them.
TEST(Recorder, NamesTheCallingModuleOfACallerWithoutFramePointers) {
  recorder rec(mesa_libc_allocator());
  mesa::callback_validator validator(rec.table());
  vk_audit::caller_entry entry(validator.table());
  for (const mesa_allocator *t : {rec.table(), entry.table()}) {
    void *p = call_alloc_with_rbp_as_data(t, 64);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(vk_audit::entry_caller(), nullptr) << "noted only while the call runs";
    t->free_fn(t->user_data, p);
  }
  const std::vector<vk_audit::module_counts> modules = rec.modules();
  ASSERT_EQ(modules.size(), 1u) << "both calls came from this test's code";
  EXPECT_NE(modules[0].module, "(unknown)");
  EXPECT_EQ(modules[0].allocations, 2u);
  EXPECT_EQ(validator.violation_count(), 0u);
}
#endif

// A table that fails every request: the hook hears each failure with its call.
void *refuse(void *, std::size_t, std::size_t, mesa_alloc_scope) { return nullptr; }
void *refuse_realloc(void *, void *, std::size_t, std::size_t, mesa_alloc_scope) { return nullptr; }
void ignore(void *, void *) {}
const mesa_allocator kRefusing = {nullptr, refuse, refuse_realloc, ignore, nullptr, nullptr};

TEST(Recorder, ReportsFailedAttemptsToTheHook) {
  recorder rec(&kRefusing);
  std::vector<vk_audit::injection> heard;
  rec.on_failure(
      [](void *context, const vk_audit::injection &at) {
        static_cast<std::vector<vk_audit::injection> *>(context)->push_back(at);
      },
      &heard);
  rec.set_call("vkCreateDevice", "device");
  EXPECT_EQ(alloc(rec.table(), 48, 16, MESA_ALLOC_SCOPE_DEVICE), nullptr);
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard[0].attempt, 0u);
  EXPECT_EQ(heard[0].call, "vkCreateDevice");
  EXPECT_EQ(heard[0].size, 48u);
  EXPECT_EQ(heard[0].scope, MESA_ALLOC_SCOPE_DEVICE);
  EXPECT_FALSE(heard[0].injected);  // refused below, not by fail_attempt
  EXPECT_EQ(rec.total(MESA_ALLOC_SCOPE_DEVICE).failed, 1u);
}

// The audit's stack below the validator: the recorder over a tracking table, which keeps a
// shrinking realloc in place without asking its parent. The recorder fails the attempt it
// numbered, so a driver's shrinking pfnReallocation is a point the sweep fails (the block left
// as it was) and the numbers after it do not shift: a fault layer under the tracking table never
// saw the shrink.
TEST(Recorder, FailsTheAttemptItNumberedAShrinkingReallocIncluded) {
  const mesa_allocator *tracking =
      mesa_tracking_create(mesa_libc_allocator(), "application callbacks", nullptr);
  ASSERT_NE(tracking, nullptr);
  for (std::uint64_t point = 0; point < 4; ++point) {
    SCOPED_TRACE(point);
    recorder rec(tracking);
    std::vector<vk_audit::injection> heard;
    rec.on_failure(
        [](void *context, const vk_audit::injection &at) {
          static_cast<std::vector<vk_audit::injection> *>(context)->push_back(at);
        },
        &heard);
    rec.fail_attempt(point);
    rec.set_call("vkCreateInstance", "instance");
    const mesa_allocator *t = rec.table();
    auto *table = static_cast<char *>(alloc(t, 4096, 16, MESA_ALLOC_SCOPE_INSTANCE));
    if (table != nullptr) std::memset(table, 'x', 64);
    char *trimmed =
        table == nullptr
            ? nullptr
            : static_cast<char *>(t->realloc_fn(t->user_data, table, 64, 16,
                                                MESA_ALLOC_SCOPE_INSTANCE));  // 1: a shrink
    void *after = alloc(t, 32, 8, MESA_ALLOC_SCOPE_OBJECT);                   // 2
    EXPECT_EQ(rec.attempts(), table == nullptr ? 2u : 3u);
    if (point < 3) {
      ASSERT_EQ(heard.size(), 1u);
      EXPECT_TRUE(heard[0].injected);
      EXPECT_EQ(heard[0].attempt, point);
      EXPECT_EQ(heard[0].realloc, point == 1);
    } else {
      EXPECT_TRUE(heard.empty());
    }
    EXPECT_EQ(table == nullptr, point == 0);
    EXPECT_EQ(trimmed == nullptr, point <= 1);
    EXPECT_EQ(after == nullptr, point == 2);
    if (point == 1) {  // the failed shrink left the block whole and live
      EXPECT_EQ(table[63], 'x');
      EXPECT_EQ(rec.total(MESA_ALLOC_SCOPE_INSTANCE).failed, 1u);
      trimmed = table;
    }
    if (trimmed != nullptr) t->free_fn(t->user_data, trimmed);
    t->free_fn(t->user_data, after);
  }
  mesa_tracking_stats stats;
  mesa_tracking_get_stats(tracking, &stats);
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_EQ(stats.failed_allocations, 0u);  // the layers below never saw an injected call
  mesa_tracking_destroy(tracking);
}

bool use_lavapipe() {
  for (const char *path : {"/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
                           "/usr/share/vulkan/icd.d/lvp_icd.aarch64.json"}) {
    if (access(path, R_OK) == 0) {
      setenv("VK_DRIVER_FILES", path, 1);
      setenv("VK_ICD_FILENAMES", path, 1);
      setenv("VK_LOADER_LAYERS_DISABLE", "~implicit~", 1);
      setenv("MESA_SHADER_CACHE_DISABLE", "true", 1);
      return true;
    }
  }
  return false;
}

TEST(RunAudit, InjectedFailureIsSeenWithItsCallAndReturnedAsOutOfHostMemory) {
  if (!use_lavapipe()) GTEST_SKIP() << "lavapipe (mesa-vulkan-drivers) is not installed";
  const vk_audit::run_result clean = vk_audit::run_audit(vk_audit::workload_kind::device);
  ASSERT_TRUE(clean.outcome.completed);
  EXPECT_FALSE(clean.injected);
  EXPECT_GT(clean.attempts, 100u);
  EXPECT_EQ(clean.live_blocks_after_destroy, 0);
  EXPECT_EQ(clean.allocations(), clean.frees());

  const vk_audit::run_result failed = vk_audit::run_audit(vk_audit::workload_kind::device, 0);
  EXPECT_TRUE(failed.injected);
  EXPECT_EQ(failed.injected_at.attempt, 0u);
  EXPECT_EQ(failed.injected_at.call, "vkCreateInstance");
  EXPECT_FALSE(failed.outcome.completed);
  ASSERT_NE(failed.outcome.failed_call, nullptr);
  EXPECT_STREQ(failed.outcome.failed_call, "vkCreateInstance");
  EXPECT_EQ(failed.outcome.failed_result, VK_ERROR_OUT_OF_HOST_MEMORY);
  EXPECT_EQ(failed.totals[failed.injected_at.scope].failed, 1u);
  EXPECT_EQ(failed.tracking.failed_allocations, 0u);  // failed above it, by the recorder
  EXPECT_EQ(failed.live_blocks_after_destroy, 0);
}

}  // namespace
