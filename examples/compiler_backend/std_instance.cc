// The same compile instantiated on std::allocator: the twin that the link-level audit must
// catch (//examples/compiler_backend:std_instance_audit_test expects global new/delete).
#include "examples/compiler_backend/driver.h"
#include "examples/compiler_backend/variants.h"

namespace compiler_backend {

template RunResult compile_shaders<std_variant>(std_variant &, const RunOptions &,
                                                const CompileOptions &, PassTimes *);

}  // namespace compiler_backend
