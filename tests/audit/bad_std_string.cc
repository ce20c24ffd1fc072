// Audit fixture: code that grows, assigns or keeps a std::string it does not create (an output
// buffer, a static name). libstdc++ declares std::string `extern template`, so reserve,
// operator+=, append and assign run out of line in libstdc++.so and call operator new there:
// this object references no operator new, only the string's members.
#include <string>

void bad_emit(std::string &out, const char *text) {
  out.reserve(out.size() + 64);
  out += text;
  out.append(" ; comment\n");
}

void bad_assign(std::string &out, const char *text) { out = text; }

// A static string: its destructor (registered at exit) frees what assign allocated.
const std::string *bad_keep_name(const char *name) {
  static std::string kept;
  kept.assign(name);
  return &kept;
}
