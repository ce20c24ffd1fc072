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

// A name cut for a message: NUL-terminated, at most kShownNameBytes bytes (never half a UTF-8
// character), then "..." if the name was longer. A control byte is written as \xNN, so that a
// NUL in the input is named instead of ending the message's text there.
struct ShownName {
  char text[kShownNameBytes + 4];
};

inline ShownName shown(std::string_view name) {
  ShownName s;
  std::size_t in = 0, out = 0;
  while (in < name.size()) {
    const auto c = static_cast<unsigned char>(name[in]);
    const bool control = c < 0x20 || c == 0x7f;
    std::size_t take = 1;  // input bytes: a UTF-8 character whole
    while (!control && c >= 0xc0 && in + take < name.size() &&
           (static_cast<unsigned char>(name[in + take]) & 0xc0) == 0x80)
      ++take;
    const std::size_t written = control ? 4 : take;
    if (out + written > kShownNameBytes) break;
    if (control)
      std::snprintf(s.text + out, 5, "\\x%02x", c);
    else
      std::memcpy(s.text + out, name.data() + in, take);
    in += take;
    out += written;
  }
  if (in < name.size()) {
    std::memcpy(s.text + out, "...", 3);
    out += 3;
  }
  s.text[out] = '\0';
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
