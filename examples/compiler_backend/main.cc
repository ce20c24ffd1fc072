// compiler_backend — compiles N generated shaders on a chosen allocator and reports per-pass
// time, per-component memory accounting and a checksum of the compiled code.
//
//   bazel run -c opt //examples:compiler_backend -- --shaders 100 --size 2000 --allocator arena
//
// --allocator: std (std::allocator), pmr_newdelete (polymorphic_allocator on
// new_delete_resource), pmr_monotonic (monotonic_buffer_resource per shader and per pass),
// arena (polymorphic_allocator on mesa::arena_resource), arena_static (mesa::arena_allocator).
// All but std go through tracking_resources "ir" and "scratch" under "compiler"; the arena
// ones sit on the default mesa_allocator (MESA_ALLOC_DEBUG applies), the pmr ones on
// new/delete. Every choice prints the same checksum. Running out of memory (say
// MESA_ALLOC_DEBUG=limit=N with an arena, without --app-callbacks) ends the run with
// "shader K (seed S): ... out of memory in <pass>" on stderr and exit status 1.
//
// --app-callbacks (with the Vulkan bridge): what a Vulkan driver does with the
// VkAllocationCallbacks an application passed to vkCreateDevice — "compiler" sits on a
// mesa::vk_resource over them, so every byte of every shader reaches the application, which
// counts its calls and reports them at the end. The application allocates from the C library
// (mesa_libc_allocator), not from the default mesa_allocator, so MESA_ALLOC_DEBUG (limit=
// included) does not apply to that run.
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory_resource>
#include <new>
#include <string>

#include "examples/compiler_backend/driver.h"
#include "examples/compiler_backend/printer.h"
#include "examples/compiler_backend/variants.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/tracking_resource.h"

#if MESA_ALLOC_EXAMPLE_VULKAN
#include "mesa_alloc/vulkan.h"
#endif

namespace {

using namespace compiler_backend;

constexpr char kUsage[] =
    "usage: compiler_backend [--shaders N] [--size S] [--seed K] [--registers R]\n"
    "         [--allocator std|pmr_newdelete|pmr_monotonic|arena|arena_static]\n"
    "         [--dump]   (print the first shader before and after compiling; that extra\n"
    "                     compile shows in the accounting table; none with --shaders 0)\n"
    "         [--app-callbacks]   (all but std: allocate through application\n"
    "                              VkAllocationCallbacks, via the Vulkan bridge; they use\n"
    "                              the C library, so MESA_ALLOC_DEBUG does not apply)\n"
    "         [--help]\n";

int usage(const char *why) {
  std::fprintf(stderr, "compiler_backend: %s\n%s", why, kUsage);
  return 2;
}

// Checked before anything is built, so a usage error prints nothing else (no --app-callbacks
// report).
bool known_allocator(const std::string &name) {
  for (const char *known : {"std", "pmr_newdelete", "pmr_monotonic", "arena", "arena_static"}) {
    if (name == known) return true;
  }
  return false;
}

// Decimal digits only: strtoull alone would skip leading spaces and accept a sign (" -1" is
// 2^64 - 1).
bool parse_uint(const char *s, std::uint64_t max, std::uint64_t &out) {
  if (!std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  out = v;
  return true;
}

void print_component(const char *label, const mesa::tracking_resource &t) {
  mesa::tracking_stats s = t.stats();
  std::printf("  %-10s %12zu %14llu %12llu %10zu %10zu\n", label, s.peak_bytes,
              static_cast<unsigned long long>(s.total_bytes),
              static_cast<unsigned long long>(s.total_allocations), s.peak_blocks, s.bytes_in_use);
}

// Prints the first shader as generated and, if its compile succeeds, as compiled; returns the
// compile's error (out of memory included) otherwise.
template <class Variant>
Diagnostic dump_first(Variant &v, const RunOptions &run, const CompileOptions &options) {
  using A = typename Variant::alloc_type;
  A a = v.begin_shader();
  Diagnostic error;
  {
    Shader<A> shader(a);
    scratch_scope<typename Variant::scratch_type> scope(v.scratch());
    try {
      generate(shader, run.seed, run.size, v.scratch());
    } catch (const std::bad_alloc &) {
      error = Diagnostic::error("out of memory in %s", pass_name(Pass::kGenerate));
    }
    if (error.ok) {
      std::printf("; ---- shader seed %llu, generated\n%s",
                  static_cast<unsigned long long>(run.seed), print(shader).c_str());
      CompileResult r = compile_shader(shader, v.scratch(), options, nullptr);
      if (r.error.ok) {
        std::printf("; ---- compiled\n%s", print(shader).c_str());
      } else {
        error = r.error;
      }
    }
  }
  v.end_shader();
  return error;
}

#if MESA_ALLOC_EXAMPLE_VULKAN
// The application's side: VkAllocationCallbacks on its own allocator (here the C library, via
// mesa_libc_allocator), counting what the driver asks of it.
struct application_allocator {
  unsigned long long allocations = 0, reallocations = 0, frees = 0;
  long long live = 0;

  static application_allocator &of(void *user) {
    return *static_cast<application_allocator *>(user);
  }
  static VKAPI_ATTR void *VKAPI_CALL allocation(void *user, size_t size, size_t alignment,
                                                VkSystemAllocationScope scope) {
    void *p = mesa_alloc2(nullptr, mesa_libc_allocator(), size, alignment,
                          static_cast<mesa_alloc_scope>(scope));
    if (p != nullptr) ++of(user).allocations, ++of(user).live;
    return p;
  }
  static VKAPI_ATTR void *VKAPI_CALL reallocation(void *user, void *old, size_t size,
                                                  size_t alignment, VkSystemAllocationScope scope) {
    void *p = mesa_realloc2(nullptr, mesa_libc_allocator(), old, size, alignment,
                            static_cast<mesa_alloc_scope>(scope));
    if (p != nullptr) {
      ++of(user).reallocations;
      if (old == nullptr) ++of(user).live;
    }
    return p;
  }
  static VKAPI_ATTR void VKAPI_CALL free(void *user, void *p) {
    if (p == nullptr) return;
    mesa_free2(nullptr, mesa_libc_allocator(), p);
    ++of(user).frees, --of(user).live;
  }
  VkAllocationCallbacks callbacks() {
    return {this, allocation, reallocation, free, nullptr, nullptr};
  }
};
#endif

template <class Variant>
int run(Variant &v, const char *name, const RunOptions &run, const CompileOptions &options,
        bool dump, const mesa::tracking_resource *compiler, const mesa::tracking_resource *ir,
        const mesa::tracking_resource *scratch) {
  if (dump && run.shaders > 0) {  // --shaders 0 has no first shader
    Diagnostic d;
    try {
      d = dump_first(v, run, options);
    } catch (const std::bad_alloc &) {  // printing: std::string on the default heap
      d = Diagnostic::error("out of memory while printing");
    }
    if (!d.ok) {
      std::fprintf(stderr, "compiler_backend: --dump: shader 0 (seed %llu): %s\n",
                   static_cast<unsigned long long>(run.seed), d.message);
      return 1;
    }
  }
  PassTimes times;
  RunResult r = compile_shaders(v, run, options, &times);
  if (!r.error.ok) {
    std::fprintf(stderr, "compiler_backend: %s\n", r.error.message);
    return 1;
  }
  std::printf("compiled %u shaders of ~%u instructions (seed %llu) with --allocator %s\n",
              run.shaders, run.size < kMinShaderSize ? kMinShaderSize : run.size,
              static_cast<unsigned long long>(run.seed), name);
  std::printf("instructions: %llu in, %llu out, %llu spilled values\n\n",
              static_cast<unsigned long long>(r.instructions_in),
              static_cast<unsigned long long>(r.instructions_out),
              static_cast<unsigned long long>(r.spilled));
  std::printf("  %-16s %10s %7s\n", "pass", "time (ms)", "share");
  const double total = static_cast<double>(times.total());
  for (int p = 0; p < kNumPasses; ++p) {
    std::printf("  %-16s %10.3f %6.1f%%\n", pass_name(static_cast<Pass>(p)), times.ns[p] / 1e6,
                total > 0 ? 100.0 * times.ns[p] / total : 0.0);
  }
  std::printf("  %-16s %10.3f\n\n", "total", total / 1e6);
  if (compiler != nullptr) {
    std::printf("  %-10s %12s %14s %12s %10s %10s\n", "component", "peak bytes", "total bytes",
                "allocations", "peak blks", "in use");
    print_component("compiler", *compiler);
    print_component("  ir", *ir);
    print_component("  scratch", *scratch);
  } else {
    std::printf("  accounting: none — std::allocator goes straight to global operator new\n");
  }
  std::printf("\nchecksum: %016llx\n", static_cast<unsigned long long>(r.checksum));
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  RunOptions run_options;
  CompileOptions options;
  std::string allocator = "arena_static";
  bool dump = false, app_callbacks = false;
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    auto value = [&]() -> const char * { return i + 1 < argc ? argv[++i] : nullptr; };
    std::uint64_t n;
    const char *v;
    if (std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (std::strcmp(arg, "--dump") == 0) {
      dump = true;
    } else if (std::strcmp(arg, "--app-callbacks") == 0) {
#if MESA_ALLOC_EXAMPLE_VULKAN
      app_callbacks = true;
#else
      return usage("--app-callbacks needs the Vulkan bridge (built without Vulkan headers)");
#endif
    } else if (std::strcmp(arg, "--allocator") == 0) {
      if ((v = value()) == nullptr) return usage("--allocator needs a value");
      allocator = v;
    } else if (std::strcmp(arg, "--shaders") == 0) {
      if ((v = value()) == nullptr || !parse_uint(v, 1000000, n)) {
        return usage("--shaders needs a number up to 1000000");
      }
      run_options.shaders = static_cast<std::uint32_t>(n);
    } else if (std::strcmp(arg, "--size") == 0) {
      if ((v = value()) == nullptr || !parse_uint(v, 1000000, n)) {
        return usage("--size needs a number up to 1000000");
      }
      run_options.size = static_cast<std::uint32_t>(n);
    } else if (std::strcmp(arg, "--seed") == 0) {
      if ((v = value()) == nullptr || !parse_uint(v, UINT64_MAX, n)) {
        return usage("--seed needs a number");
      }
      run_options.seed = n;
    } else if (std::strcmp(arg, "--registers") == 0) {
      if ((v = value()) == nullptr || !parse_uint(v, kMaxRegisters, n) || n == 0) {
        return usage("--registers needs a number from 1 to 64");
      }
      options.num_registers = static_cast<std::uint32_t>(n);
    } else {
      return usage((std::string("unknown argument ") + arg).c_str());
    }
  }

  if (!known_allocator(allocator)) {
    return usage(("unknown allocator '" + allocator + "'").c_str());
  }
  if (allocator == "std") {
    if (app_callbacks) return usage("--app-callbacks does not apply to std::allocator");
    std_variant v;
    return run(v, "std", run_options, options, dump, nullptr, nullptr, nullptr);
  }
  const bool on_arena = allocator == "arena" || allocator == "arena_static";
  mesa::callback_resource default_table(mesa_default_allocator());
  std::pmr::memory_resource *base = on_arena
                                        ? static_cast<std::pmr::memory_resource *>(&default_table)
                                        : std::pmr::new_delete_resource();
#if MESA_ALLOC_EXAMPLE_VULKAN
  application_allocator application;
  const VkAllocationCallbacks device_callbacks = application.callbacks();
  // vkCreateGraphicsPipelines(..., pAllocator = NULL): the device's callbacks apply.
  mesa::vk_resource vk_device(nullptr, &device_callbacks, nullptr,
                              VK_SYSTEM_ALLOCATION_SCOPE_OBJECT);
  if (app_callbacks) base = &vk_device;
  struct report_at_exit {
    const application_allocator &app;
    bool on;
    ~report_at_exit() {
      if (on)
        std::printf(
            "application callbacks: %llu allocations, %llu reallocations, %llu frees, "
            "%lld blocks live\n",
            app.allocations, app.reallocations, app.frees, app.live);
    }
  } report{application, app_callbacks};
#endif
  mesa::tracking_resource compiler(base, "compiler");
  mesa::tracking_resource ir(base, "ir", &compiler);
  mesa::tracking_resource scratch(base, "scratch", &compiler);
  if (allocator == "pmr_newdelete") {
    pmr_variant v(&ir, &scratch);
    return run(v, "pmr_newdelete", run_options, options, dump, &compiler, &ir, &scratch);
  }
  if (allocator == "pmr_monotonic") {
    monotonic_variant v(&ir, &scratch);
    return run(v, "pmr_monotonic", run_options, options, dump, &compiler, &ir, &scratch);
  }
  if (allocator == "arena") {
    arena_pmr_variant v(&ir, &scratch);
    return run(v, "arena", run_options, options, dump, &compiler, &ir, &scratch);
  }
  arena_static_variant v(&ir, &scratch);
  return run(v, "arena_static", run_options, options, dump, &compiler, &ir, &scratch);
}
