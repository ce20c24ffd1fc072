// driver.h — compiles a run of generated shaders on one memory variant (see variants.h).
//
// What it is for: the loop shared by the command-line tool, the tests and the benchmark:
// for shader k, generate it from seed + k (modulo 2^64: seeds wrap) into a fresh IR allocator, run
// the pipeline, fold its checksum into the run's, then drop the shader (destructors, or the arena
// release when the variant reclaims memory wholesale) and end the shader on the variant. Out of
// memory (std::bad_alloc from the allocator) ends the run with "shader K (seed S): ... out of
// memory in <pass>"; that shader's memory is dropped as usual and the variant stays usable.
//
// What it costs: the passes' costs; no allocation of its own.
//
// Example:
//   std_variant v;
//   RunResult r = compile_shaders(v, RunOptions{100, 2000, 1}, CompileOptions{}, &times);
//   printf("checksum: %016llx\n", (unsigned long long)r.checksum);
#ifndef EXAMPLES_COMPILER_BACKEND_DRIVER_H_
#define EXAMPLES_COMPILER_BACKEND_DRIVER_H_

#include <cstdint>
#include <new>

#include "examples/compiler_backend/generator.h"
#include "examples/compiler_backend/pipeline.h"

namespace compiler_backend {

struct RunOptions {
  std::uint32_t shaders = 100;
  std::uint32_t size = 2000;  // instructions per shader
  std::uint64_t seed = 1;
};

struct RunResult {
  std::uint64_t checksum = kChecksumSeed;
  std::uint64_t instructions_in = 0;
  std::uint64_t instructions_out = 0;
  std::uint64_t spilled = 0;
  Diagnostic error;
};

template <class Variant>
RunResult compile_shaders(Variant &variant, const RunOptions &run, const CompileOptions &options,
                          PassTimes *times) {
  using A = typename Variant::alloc_type;
  RunResult result;
  auto &scratch = variant.scratch();
  for (std::uint32_t k = 0; k < run.shaders; ++k) {
    A a = variant.begin_shader();
    Shader<A> *shader = nullptr;
    CompileResult r;
    try {
      shader = new_object<Shader<A>>(a, a);
      scratch_scope<std::remove_reference_t<decltype(scratch)>> scope(scratch);
      pass_timer t(times, Pass::kGenerate);
      generate(*shader, run.seed + k, run.size, scratch);
    } catch (const std::bad_alloc &) {
      r.error = Diagnostic::error("out of memory in %s", pass_name(Pass::kGenerate));
    }
    if (r.error.ok) r = compile_shader(*shader, scratch, options, times);
    {
      pass_timer t(times, Pass::kRelease);
      if constexpr (!Variant::kDropByRelease) delete_object(a, shader);
      variant.end_shader();
    }
    if (!r.error.ok) {
      result.error =
          Diagnostic::error("shader %u (seed %llu): %s", k,
                            static_cast<unsigned long long>(run.seed + k), r.error.message);
      return result;
    }
    result.checksum = checksum_word(result.checksum, r.checksum);
    result.instructions_in += r.instructions_in;
    result.instructions_out += r.instructions_out;
    result.spilled += r.spilled;
  }
  return result;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_DRIVER_H_
