// diagnostic.h — the result of a verifier or of the parser: ok, or one clear message.
//
// What it is for: reporting bad IR or bad input without allocating (the verifiers run on the
// compile path, whose allocations all go through the shader's allocator).
//
// What it costs: a 192-byte buffer, formatted with snprintf only on failure.
//
// Example:
//   Diagnostic d = verify_ssa(*f, scratch);
//   if (!d.ok) fprintf(stderr, "%s\n", d.message);
#ifndef EXAMPLES_COMPILER_BACKEND_DIAGNOSTIC_H_
#define EXAMPLES_COMPILER_BACKEND_DIAGNOSTIC_H_

#include <cstdarg>
#include <cstdio>

namespace compiler_backend {

struct Diagnostic {
  bool ok = true;
  char message[192] = {};

  [[gnu::format(printf, 1, 2)]] static Diagnostic error(const char *format, ...) {
    Diagnostic d;
    d.ok = false;
    va_list args;
    va_start(args, format);
    std::vsnprintf(d.message, sizeof(d.message), format, args);
    va_end(args);
    return d;
  }
};

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_DIAGNOSTIC_H_
