// The whole compile (generator, passes, verifiers, driver loop) instantiated on
// mesa::arena_allocator, compiled with poison.h force-included, so that the link-level audit
// (//examples/compiler_backend:arena_instance_audit_test) can check that this code references
// neither libc allocation nor global operator new/delete: every allocation goes to the arenas.
#include "examples/compiler_backend/driver.h"
#include "examples/compiler_backend/variants.h"

namespace compiler_backend {

template RunResult compile_shaders<arena_static_variant>(arena_static_variant &, const RunOptions &,
                                                         const CompileOptions &, PassTimes *);

}  // namespace compiler_backend
