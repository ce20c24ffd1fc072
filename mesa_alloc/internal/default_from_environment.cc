// MESA_ALLOC_DEBUG: the layers it names, stacked over libc, become the default allocator.
//
// Stack, bottom to top: libc -> tracking (stats, limit=BYTES) -> logging (trace=FILE) -> debug
// (cookie, fill, guard, guard_under, quarantine, leaks), whose own bookkeeping comes from libc
// beside the stack -> fault (fail=N), where the program's calls enter, so that allocation N is
// the program's call N whatever the layers below do with it. Every layer lives
// in static storage that is never destroyed, because blocks may be freed until the very end of
// the process; leak and stats reports run from atexit.
#include "mesa_alloc/internal/default_from_environment.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/internal/c_tables.h"
#include "mesa_alloc/internal/fork_locks.h"

namespace mesa::internal {
namespace {

template <class T>
struct static_slot {
  template <class... Args>
  T *construct(Args &&...args) {
    return new (storage) T(std::forward<Args>(args)...);
  }
  alignas(T) unsigned char storage[sizeof(T)];
};

static_slot<tracking_table> g_tracking;
static_slot<logging_table> g_logging;
static_slot<debug_table> g_debug;
static_slot<fault_gate_table> g_fault;
// The debug layer's own bookkeeping (its block table, quarantine ring) comes straight from libc:
// limit= and the stats and trace then count the program's blocks alone.
static_slot<callback_resource> g_bookkeeping;

tracking_table *g_stats = nullptr;    // report at exit
debug_table *g_leaks = nullptr;       // report at exit
debug_table *g_quarantine = nullptr;  // check (flush) at exit: a write after free is found there
logging_table *g_trace = nullptr;     // flush at exit

// A process may hold several copies of mesa_alloc (each driver the Vulkan loader loads may link
// its own), and each reports for itself: one that is part of a shared library says which,
// once, before its first report (an error, leaks, statistics). The name is found when the
// layers are made, so that a report from the guard pages' signal handler need not look it up.
char g_naming_line[600];  // empty: this copy is part of the program itself
std::atomic<bool> g_named{false};

void find_this_copy() {
  Dl_info info;
  link_map *library = nullptr;
  if (dladdr1(reinterpret_cast<void *>(&find_this_copy), &info, reinterpret_cast<void **>(&library),
              RTLD_DL_LINKMAP) == 0 ||
      library == nullptr || library->l_name == nullptr || library->l_name[0] == '\0')
    return;  // the program itself
  std::snprintf(g_naming_line, sizeof g_naming_line,
                "mesa_alloc: MESA_ALLOC_DEBUG reports of the mesa_alloc in %s\n", library->l_name);
}

// Written with write(2): the guard pages' signal handler may call it.
void name_this_copy() {
  if (g_naming_line[0] == '\0' || g_named.exchange(true)) return;
  write_to_stderr(g_naming_line, std::strlen(g_naming_line));
}

// Before any report of the debug layer, which may end the process (a double free, an overrun,
// a guard-page fault in the signal handler): name this copy, and write out what the trace holds,
// so that the events leading to the error are in the file. A leak report (`ending` false) lets
// the process go on: a trace already finished stays so.
void before_report(bool ending) {
  name_this_copy();
  if (g_trace != nullptr) g_trace->file.flush_unless_busy(ending);
}

// At exit and at quick_exit(), which skips the reports (it is meant to end a process at once):
// the trace's buffered events and its end record would be lost.
void finish_trace() {
  if (g_trace != nullptr) g_trace->file.finish();
}

// The process that made the layers. A fork() child inherits them, and its copy of the atexit
// handler: one that ends with exit() would report the parent's live blocks as its leaks and
// print a second statistics table, so a child reports nothing (as it writes no trace).
pid_t g_reporting_pid = 0;

void at_exit() {
  if (getpid() != g_reporting_pid) return;
  if (g_stats != nullptr || (g_leaks != nullptr && g_leaks->live_blocks() > 0)) name_this_copy();
  if (g_quarantine != nullptr) g_quarantine->flush_quarantine();
  if (g_leaks != nullptr) g_leaks->report_leaks();
  if (g_stats != nullptr) {
    std::fprintf(stderr, "mesa_alloc: statistics of the default allocator (MESA_ALLOC_DEBUG)\n");
    g_stats->tracker.print_report(stderr);
  }
  finish_trace();
}

// fork(): the layers' locks are held across it (fork_locks.h), debug layers first, as they
// sit above the trace. In the parent the trace whose locks were taken is the one released: a
// first allocation on another thread may make the trace meanwhile (the handlers are there from
// load). In the child, whatever trace there is now has its locks reset, taken or not: it has
// one thread, and a trace made after the prepare handler may have been mid-call on another.
logging_table *g_trace_locked_for_fork = nullptr;

void before_fork() {
  fork_locks::lock_debug_resources();
  g_trace_locked_for_fork = g_trace;
  if (g_trace_locked_for_fork != nullptr) fork_locks::lock_trace(*g_trace_locked_for_fork);
}

void after_fork(bool in_child) {
  logging_table *trace = in_child ? g_trace : g_trace_locked_for_fork;
  if (trace != nullptr) fork_locks::unlock_trace(*trace, in_child);
  g_trace_locked_for_fork = nullptr;
  fork_locks::unlock_debug_resources();
}

void after_fork_in_parent() { after_fork(false); }
void after_fork_in_child() { after_fork(true); }

// Blanks around words, keys and values in MESA_ALLOC_DEBUG are not part of them.
bool blank(char c) { return c == ' ' || c == '\t'; }

struct settings {
  debug_options debug;
  bool debug_layer = false;
  bool stats = false;
  bool fail = false;
  unsigned long long fail_at = 0;
  std::size_t limit = tracking_resource::kNoLimit;
  char trace_path[512] = {};  // a name of up to 511 bytes (the warning says so)
};

// Decimal digits, with a k, m or g suffix where `allow_suffix`. A well-formed number past 64
// bits is read as the largest there is, with `*saturated` set.
bool parse_number(const char *text, std::size_t length, unsigned long long *out, bool allow_suffix,
                  bool *saturated) {
  if (length == 0) return false;
  unsigned long long value = 0;
  bool over = false;
  std::size_t i = 0;
  for (; i < length && text[i] >= '0' && text[i] <= '9'; ++i) {
    over = over || __builtin_mul_overflow(value, 10ull, &value) ||
           __builtin_add_overflow(value, static_cast<unsigned long long>(text[i] - '0'), &value);
  }
  if (i == 0) return false;
  if (i < length && allow_suffix && i + 1 == length) {
    const char s = text[i] | 0x20;
    const int shift = s == 'k' ? 10 : s == 'm' ? 20 : s == 'g' ? 30 : -1;
    if (shift < 0) return false;
    over = over || value > (~0ull >> shift);
    value <<= shift;
    ++i;
  }
  if (i != length) return false;
  *out = over ? ~0ull : value;
  *saturated = over;
  return true;
}

bool is(const char *word, std::size_t length, const char *name) {
  return std::strlen(name) == length && std::memcmp(word, name, length) == 0;
}

void warn(const char *word, std::size_t length, const char *why) {
  std::fprintf(stderr,
               "mesa_alloc: MESA_ALLOC_DEBUG: %s '%.*s' ignored (known: cookie, fill, guard, "
               "guard_under, quarantine, leaks, unwind, stats, trace=FILE, fail=N, limit=BYTES)\n",
               why, static_cast<int>(length), word);
}

// A word that sets what an earlier one already set differently: the last one counts.
void warn_override(const char *word, std::size_t length) {
  std::fprintf(stderr,
               "mesa_alloc: MESA_ALLOC_DEBUG: '%.*s' overrides an earlier word (the last one "
               "counts)\n",
               static_cast<int>(length), word);
}

void set_guard(const char *word, std::size_t length, guard_mode mode, settings *s) {
  if (s->debug.guard != guard_mode::none && s->debug.guard != mode) warn_override(word, length);
  s->debug.guard = mode;
}

void parse_word(const char *word, std::size_t length, settings *s) {
  const char *equals = static_cast<const char *>(std::memchr(word, '=', length));
  if (equals == nullptr) {
    if (is(word, length, "cookie")) {
      s->debug.cookie = true;
    } else if (is(word, length, "fill")) {
      s->debug.fill = true;
    } else if (is(word, length, "guard")) {
      set_guard(word, length, guard_mode::after, s);
    } else if (is(word, length, "guard_under")) {
      set_guard(word, length, guard_mode::before, s);
    } else if (is(word, length, "quarantine")) {
      s->debug.quarantine_bytes = std::size_t{16} << 20;
      s->debug.fill = true;
    } else if (is(word, length, "leaks")) {
      s->debug.record_stacks = true;
      s->debug.report_leaks_on_destroy = true;
    } else if (is(word, length, "unwind")) {
      s->debug.record_stacks = true;
      s->debug.unwinder = stack_unwinder::unwind_tables;
    } else if (is(word, length, "stats")) {
      s->stats = true;
      return;
    } else {
      warn(word, length, "unknown word");
      return;
    }
    s->debug_layer = true;
    return;
  }
  // Blanks around '=' are not part of the key or the value ("trace = x.trace").
  std::size_t key = static_cast<std::size_t>(equals - word);
  while (key > 0 && blank(word[key - 1])) --key;
  const char *value = equals + 1;
  std::size_t value_length = length - static_cast<std::size_t>(value - word);
  while (value_length > 0 && blank(*value)) ++value, --value_length;
  unsigned long long n;
  bool saturated;
  if (is(word, key, "trace")) {
    if (value_length == 0) return warn(word, length, "bad file name in");
    if (value_length >= sizeof s->trace_path)
      return warn(word, length, "a file name over 511 bytes in");
    if (s->trace_path[0] != '\0' && (std::strlen(s->trace_path) != value_length ||
                                     std::memcmp(s->trace_path, value, value_length) != 0))
      warn_override(word, length);
    std::memcpy(s->trace_path, value, value_length);
    s->trace_path[value_length] = '\0';
  } else if (is(word, key, "fail")) {
    if (!parse_number(value, value_length, &n, false, &saturated) || saturated)
      return warn(word, length, "bad number in");
    if (s->fail && s->fail_at != n) warn_override(word, length);
    s->fail = true;
    s->fail_at = n;
  } else if (is(word, key, "limit")) {
    if (!parse_number(value, value_length, &n, true, &saturated))
      return warn(word, length, "bad number in");
    // One environment for 32- and 64-bit processes (a game launcher runs both): a budget a
    // size_t cannot hold is taken as the largest one there is.
    constexpr unsigned long long kLargest = tracking_resource::kNoLimit - 1;
    if (n > kLargest) {
      std::fprintf(stderr, "mesa_alloc: MESA_ALLOC_DEBUG: '%.*s' is %s; the limit is %llu bytes\n",
                   static_cast<int>(length), word,
                   n == kLargest + 1 && !saturated
                       ? "the largest size_t, which a tracker takes as no limit"
                       : "more than a size_t holds here",
                   kLargest);
      n = kLargest;
    }
    if (s->limit != tracking_resource::kNoLimit && s->limit != n) warn_override(word, length);
    s->limit = static_cast<std::size_t>(n);
  } else {
    warn(word, length, "unknown word");
  }
}

}  // namespace

const char *debug_words_from_environment(bool secure) noexcept {
  const char *words = std::getenv("MESA_ALLOC_DEBUG");
  if (words == nullptr || !secure) return words;
  std::fputs(
      "mesa_alloc: MESA_ALLOC_DEBUG ignored: this process runs set-user-ID, set-group-ID or with "
      "file capabilities (secure execution), where trace=FILE would write a file the user who "
      "ran it may not\n",
      stderr);
  return nullptr;
}

const mesa_allocator *default_from_environment() noexcept {
  const char *words = debug_words_from_environment(getauxval(AT_SECURE) != 0);
  if (words == nullptr || words[0] == '\0') return mesa_libc_allocator();
  settings s;
  // Only the words given switch checks on: start from everything off.
  s.debug.cookie = false;
  s.debug.fill = false;
  s.debug.report_leaks_on_destroy = false;
  for (const char *p = words; *p != '\0';) {
    const char *end = std::strchr(p, ',');
    std::size_t length = end != nullptr ? static_cast<std::size_t>(end - p) : std::strlen(p);
    const char *next = p + length;
    // Blanks around a word are not part of it ("cookie, leaks" is two words).
    while (length > 0 && blank(*p)) ++p, --length;
    while (length > 0 && blank(p[length - 1])) --length;
    if (length > 0) parse_word(p, length, &s);
    p = *next == ',' ? next + 1 : next;
  }

  const mesa_allocator *top = mesa_libc_allocator();
  if (s.stats || s.limit != tracking_resource::kNoLimit) {
    tracking_table *tracking = g_tracking.construct(top, "default", nullptr);
    tracking->tracker.set_limit(s.limit);
    tracking->announce_refusal.store(s.limit != tracking_resource::kNoLimit);
    tracking->debug_layer_above = s.debug_layer;
    if (s.stats) g_stats = tracking;
    top = &tracking->table;
  }
  find_this_copy();
  if (s.trace_path[0] != '\0') {
    logging_table *logging = g_logging.construct(top, s.trace_path, true);
    // Which driver's copy of the library writes the other file, or none: said after the line.
    if (logging->file.writes_elsewhere() || !logging->file.ok()) name_this_copy();
    if (logging->file.ok()) {
      g_trace = logging;
      top = &logging->table;
    }  // else the trace file has said why (cannot create it, or its first write failed)
  }
  set_before_debug_report(&before_report);
  if (s.debug_layer) {
    const bool leaks = s.debug.report_leaks_on_destroy;
    s.debug.report_leaks_on_destroy = false;  // never destroyed: reported at exit instead
    s.debug.bookkeeping = g_bookkeeping.construct(mesa_libc_allocator());
    debug_table *debug = g_debug.construct(top, s.debug);
    if (leaks) g_leaks = debug;
    // Guard pages keep a quarantine of their own even without the word (debug_resource.h).
    if (s.debug.quarantine_bytes > 0 || s.debug.guard != guard_mode::none) g_quarantine = debug;
    top = debug->table();
  }
  if (s.fail) {
    fault_gate_table *fault = g_fault.construct(top);
    fault->faults.fail_nth(s.fail_at);
    top = &fault->table;
  }
  if (g_stats != nullptr || g_leaks != nullptr || g_trace != nullptr || g_quarantine != nullptr) {
    g_reporting_pid = getpid();
    std::atexit(at_exit);
  }
  if (g_trace != nullptr) std::at_quick_exit(finish_trace);  // quick_exit runs no atexit handler
  if (g_trace != nullptr) register_fork_handlers();  // (a debug layer registers them itself)
  return top;
}

void register_fork_handlers() noexcept {
  static const int registered =
      pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
  (void)registered;
}

namespace {

// Registered when this copy is loaded, before the program or a driver can register handlers of
// its own: glibc runs prepare handlers in the reverse order of registration and the others in
// order, so a handler registered later that allocates through the layers runs before their
// locks are taken and after they are released. Registered at the first debug layer instead, the
// layers' handlers ran inside a program's: its prepare handler waited for a lock its own thread
// held (tests/mesa_alloc_debug_test.sh, 3k).
[[gnu::constructor]] void register_fork_handlers_at_load() { register_fork_handlers(); }

}  // namespace

void fork_locks::lock_trace(logging_table &trace) noexcept {
  trace.reuse_lock.lock();
  trace.logging.sites_lock_.lock();
  trace.file.lock_.lock();
}

void fork_locks::unlock_trace(logging_table &trace, bool in_child) noexcept {
  trace.file.lock_.unlock_after_fork();
  trace.logging.sites_lock_.unlock_after_fork();
  if (in_child)
    ::new (static_cast<void *>(&trace.reuse_lock)) std::shared_mutex();
  else
    trace.reuse_lock.unlock();
}

}  // namespace mesa::internal
