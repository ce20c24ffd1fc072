// diagnostic.h — the result of a verifier or of the parser: ok, or one clear message.
//
// What it is for: reporting bad IR or bad input without allocating (the verifiers run on the
// compile path, whose allocations all go through the shader's allocator).
//
// Names from the input (functions, symbols, labels) can be any length: messages show them
// through shown(), which keeps the first kShownNameBytes bytes and adds "...", so the reason
// after a name always fits in the buffer.
//
// What it costs: a 192-byte buffer, formatted with snprintf only on failure; shown() copies at
// most 52 bytes.
//
// Example:
//   Diagnostic d = verify_ssa(*f, scratch);
//   if (!d.ok) fprintf(stderr, "%s\n", d.message);
//   return Diagnostic::error("@%s: bb%u is empty", shown(f.name).text, b->index);
#ifndef EXAMPLES_COMPILER_BACKEND_DIAGNOSTIC_H_
#define EXAMPLES_COMPILER_BACKEND_DIAGNOSTIC_H_

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace compiler_backend {

inline constexpr std::size_t kShownNameBytes = 48;

// A name cut for a message: NUL-terminated, at most kShownNameBytes bytes of the name (never
// half a UTF-8 character), then "..." if it was longer.
struct ShownName {
  char text[kShownNameBytes + 4];
};

inline ShownName shown(std::string_view name) {
  ShownName s;
  std::size_t n = name.size();
  if (n > kShownNameBytes) {
    n = kShownNameBytes;
    while (n > 0 && (static_cast<unsigned char>(name[n]) & 0xc0) == 0x80) --n;
  }
  std::memcpy(s.text, name.data(), n);
  if (n < name.size()) {
    std::memcpy(s.text + n, "...", 3);
    n += 3;
  }
  s.text[n] = '\0';
  return s;
}

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
