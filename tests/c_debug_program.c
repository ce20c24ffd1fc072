/* A small C "driver" run by mesa_alloc_debug_test.sh under MESA_ALLOC_DEBUG. It allocates only
 * through mesa_alloc.h, so the environment decides which layers it runs on. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mesa_alloc/mesa_alloc.h"

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* the kernel's (linux/signal.h); glibc's headers lack it */
#endif

/* Leaks one 40-byte block; everything else is freed. Not inlined: the test looks for its name
 * in the allocation stack. */
__attribute__((noinline)) static void leak_some(void) {
  char *name = mesa_strdup("vertex shader");
  void *kept = mesa_malloc(40);
  memset(kept, 1, 40);
  void *grown = mesa_realloc(mesa_calloc(4, 8), 256);
  mesa_free(grown);
  mesa_free(name);
}

static int overrun(void) {
  volatile unsigned char *p = mesa_malloc(64);
  p[63] = 1;
  p[64] = 1; /* one past the end */
  mesa_free((void *)p);
  return 0;
}

/* The overrun as the first instruction of a leaf function, as -O2 without frame pointers makes
 * it (`p[64] = 1; return`): the guard report's "accessed at" frame #0 is the faulting
 * instruction itself, looked up as it is, not as a return address (the byte before it, in the
 * function before). Written in assembly so that every build makes it the same. 77 where there
 * is none (not x86-64). */
#if defined(__x86_64__)
void first_instruction_overrun(unsigned char *p);
__asm__(
    ".text\n"
    ".globl first_instruction_overrun\n"
    ".hidden first_instruction_overrun\n"
    ".type first_instruction_overrun, @function\n"
    "first_instruction_overrun:\n"
    ".cfi_startproc\n"
    "  movb $1, 64(%rdi)\n"
    "  ret\n"
    ".cfi_endproc\n"
    ".size first_instruction_overrun, . - first_instruction_overrun\n");
#endif

static int overrun_at_a_functions_first_instruction(void) {
#if defined(__x86_64__)
  unsigned char *p = mesa_malloc(64);
  first_instruction_overrun(p);
  mesa_free(p);
  return 0;
#else
  return 77;
#endif
}

/* The overrun with the program's own alternate signal stack of 6 KiB, registered with
 * SS_AUTODISARM (sigaltstack then says "none" inside the handler): the guard report must see it
 * is on a small stack and leave out what it has no room to look up. 77 if not run here. */
static int overrun_on_a_small_signal_stack(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 77; /* a sanitizer's frames do not fit the small stack */
#endif
  const size_t size = 6 * 1024;
  const size_t page = (size_t)getpagesize();
  char *memory =
      mmap(NULL, page + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED || mprotect(memory, page, PROT_NONE) != 0) return 77;
  stack_t stack = {0};
  stack.ss_sp = memory + page + 2 * page - size;
  stack.ss_size = size;
  stack.ss_flags = SS_AUTODISARM;
  if (sigaltstack(&stack, NULL) != 0) return 77;
  return overrun();
}

static int underrun(void) {
  volatile unsigned char *p = mesa_malloc(64);
  p[0] = 1;
  p[-1] = 1; /* one before the start */
  mesa_free((void *)p);
  return 0;
}

/* Run only with MESA_ALLOC_DEBUG=quarantine: the freed block waits in the quarantine, so the
 * write lands in memory the debug layer still owns, and it finds it when it checks the
 * quarantine (at exit here, as nothing else is freed). */
static int write_after_free(void) {
  volatile unsigned char *p = mesa_malloc(64);
  mesa_free((void *)p);
  p[7] = 1;
  return 0;
}

/* Run only under a debug layer: the second free is refused and reported. */
static int free_twice(void) {
  void *p = mesa_malloc(16);
  mesa_free(p);
  mesa_free(p);
  return 0;
}

/* Run only under a debug layer: the realloc is refused and reported. */
static int realloc_freed(void) {
  void *p = mesa_malloc(16);
  mesa_free(p);
  void *q = mesa_realloc(p, 32);
  return q == NULL ? 0 : 1;
}

/* Run only with MESA_ALLOC_DEBUG=quarantine,cookie: one byte past the end of a freed block (its
 * canary, still the debug layer's while the block waits) is found at exit. */
static int write_past_freed_end(void) {
  volatile unsigned char *p = mesa_malloc(61);
  mesa_free((void *)p);
  p[61] = 1;
  return 0;
}

/* A program with a SIGSEGV handler of its own that recovers faults on its own page (as a JIT or
 * a managed runtime does), installed before the guard layer chains to it. After one such
 * fault, a guard page overrun is still explained. */
static volatile unsigned char *own_page;
static long own_page_size;

static void own_handler(int sig, siginfo_t *info, void *context) {
  (void)context;
  const char *address = (const char *)info->si_addr;
  if (address >= (const char *)own_page && address < (const char *)own_page + own_page_size) {
    mprotect((void *)own_page, (size_t)own_page_size, PROT_READ | PROT_WRITE);
    return;
  }
  signal(sig, SIG_DFL); /* not ours: the fault kills the process when retried */
}

static int foreign_fault_then_overrun(void) {
  own_page_size = sysconf(_SC_PAGESIZE);
  own_page = mmap(NULL, (size_t)own_page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = own_handler;
  action.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &action, NULL);
  volatile unsigned char *p = mesa_malloc(64); /* the guard layer is made here */
  own_page[0] = 1;                             /* the program's own fault, recovered */
  fprintf(stderr, "own fault recovered\n");
  p[64] = 1; /* one past the end: the guard page */
  mesa_free((void *)p);
  return 0;
}

/* A one-shot crash reporter (SA_RESETHAND) installed before the guard layer: a guard overrun is
 * explained, the reporter runs once, and the process dies of the signal (a chained call on
 * every retry of the access would loop for ever). */
static void one_shot_reporter(int sig) {
  (void)sig;
  static const char line[] = "crash reporter called\n";
  if (write(2, line, sizeof line - 1) < 0) _exit(3);
}

static int reporter_then_overrun(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = one_shot_reporter;
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGSEGV, &action, NULL);
  volatile unsigned char *p = mesa_malloc(64);
  p[64] = 1;
  mesa_free((void *)p);
  return 0;
}

/* Guard pages until the kernel refuses one (its limit on mappings): the allocation that cannot
 * have its guard fails, and the program is told why, once. 77: not run here. */
static int many_guarded(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 77; /* AddressSanitizer's own allocator needs mappings too: it dies at the limit */
#endif
  enum { kMax = 200000 };
  static void *blocks[kMax];
  int n = 0;
  while (n < kMax && (blocks[n] = mesa_malloc(64)) != NULL) ++n;
  printf("%d guarded blocks\n", n);
  for (int i = 0; i < n; ++i) mesa_free(blocks[i]);
  return n < kMax ? 0 : 1;
}

/* One block, then a child that exits at once (its exit handlers run), then the free. Under
 * trace=FILE the trace has the parent's one allocation and one free, not the child's copy. */
static int fork_child_exits(void) {
  void *p = mesa_malloc(10);
  const pid_t child = fork();
  if (child == 0) exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  mesa_free(p);
  return child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* Threads allocating while the main thread forks: each child allocates through the default
 * (under MESA_ALLOC_DEBUG, through its layers) and exits; one that is not done in 10 s waits for
 * a lock a thread of the parent held at the fork. Exit status 1 if any child hung or failed,
 * 77 if not run here. */
static volatile int stop_churn;

static void *churn(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop_churn, __ATOMIC_RELAXED)) {
    char *p = mesa_malloc(100);
    p = mesa_realloc(p, 300);
    char *s = mesa_strdup("churn");
    mesa_free(s);
    mesa_free(p);
  }
  return NULL;
}

static int fork_while_threads_allocate(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 77; /* GCC 12's AddressSanitizer does not hold its own allocator's locks across fork */
#endif
  enum { kThreads = 3, kForks = 30 };
  pthread_t threads[kThreads];
  mesa_free(mesa_malloc(1)); /* the layers are built at the first allocation */
  for (int i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, churn, NULL);
  int hung = 0, failed = 0;
  for (int f = 0; f < kForks; ++f) {
    const pid_t child = fork();
    if (child == 0) {
      alarm(10);
      for (int i = 0; i < 50; ++i) mesa_free(mesa_realloc(mesa_malloc(64), 128));
      _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
      ++hung;
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      ++failed;
  }
  __atomic_store_n(&stop_churn, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  printf("%d forks: %d hung, %d failed\n", kForks, hung, failed);
  return hung == 0 && failed == 0 ? 0 : 1;
}

/* A program's own fork handlers, registered in main before its first allocation, that allocate
 * through the default in all three (glibc's malloc allows it): the layers' handlers, registered
 * when the library was loaded, run around them, so the prepare handler finds the layers' locks
 * free and the parent and child handlers find them released. Each process gets 10 s. */
static void allocate_in_handler(void) { mesa_free(mesa_malloc(16)); }

static int fork_handlers_allocate(void) {
  alarm(10);
  pthread_atfork(allocate_in_handler, allocate_in_handler, allocate_in_handler);
  mesa_free(mesa_malloc(1)); /* the layers are built at the first allocation */
  const pid_t child = fork();
  if (child == 0) {
    alarm(10);
    allocate_in_handler();
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  allocate_in_handler();
  const int child_ok = child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  printf("fork with allocating handlers: child %s\n", child_ok ? "exited" : "failed or hung");
  return child_ok ? 0 : 1;
}

/* A fork racing another thread's first allocation, which makes the layers (under trace=, the
 * trace) after the library's prepare handler found none: the child's first allocation must not
 * wait for a lock of that trace the other thread held at the fork. For the library's handler
 * to run before this program's, this one is registered before the library is initialised
 * (.preinit_array: glibc runs prepare handlers in the reverse order of registration); it lets
 * the thread make the trace and allocate through it for 2 ms before the fork goes on. */
static int race_armed, race_go, race_started, race_stop;

/* Not under AddressSanitizer, whose own .preinit_array entry may come after this one (the mode
 * is skipped there). */
#if !defined(__SANITIZE_ADDRESS__)
static void let_the_thread_make_the_layers(void) {
  if (!__atomic_load_n(&race_armed, __ATOMIC_ACQUIRE)) return;
  __atomic_store_n(&race_go, 1, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&race_started, __ATOMIC_ACQUIRE)) sched_yield();
  const struct timespec two_ms = {0, 2 * 1000 * 1000};
  nanosleep(&two_ms, NULL);
}

static void register_before_the_library(void) {
  pthread_atfork(let_the_thread_make_the_layers, NULL, NULL);
}
__attribute__((section(".preinit_array"),
               used)) static void (*const register_early)(void) = register_before_the_library;
#endif

static void *allocate_until_stopped(void *unused) {
  (void)unused;
  while (!__atomic_load_n(&race_go, __ATOMIC_ACQUIRE)) sched_yield();
  while (!__atomic_load_n(&race_stop, __ATOMIC_ACQUIRE)) {
    void *p = mesa_malloc(32);
    __atomic_store_n(&race_started, 1, __ATOMIC_RELEASE);
    mesa_free(p);
  }
  return NULL;
}

static int fork_while_the_layers_are_made(void) {
#if defined(__SANITIZE_ADDRESS__)
  return 77; /* as fork_while_threads_allocate */
#endif
  pthread_t thread;
  pthread_create(&thread, NULL, allocate_until_stopped, NULL);
  __atomic_store_n(&race_armed, 1, __ATOMIC_RELEASE);
  const pid_t child = fork();
  if (child == 0) {
    alarm(3);
    mesa_free(mesa_malloc(16));
    _exit(0);
  }
  __atomic_store_n(&race_stop, 1, __ATOMIC_RELEASE);
  pthread_join(thread, NULL);
  int status = 0;
  waitpid(child, &status, 0);
  const int hung = WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM;
  const int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  printf("fork while the layers are made: child %s\n", ok ? "exited" : hung ? "hung" : "failed");
  return ok ? 0 : 1;
}

static int try_allocations(int count, size_t size) {
  for (int i = 0; i < count; ++i) {
    void *p = mesa_malloc(size);
    if (p == NULL) {
      printf("allocation %d of %zu bytes failed\n", i, size);
      continue;
    }
    mesa_free(p);
  }
  return 0;
}

/* Fills the budget with 1200-byte blocks, and what is left with 1-byte ones, then shrinks the
 * first large block to 300 bytes: as libc's, a shrinking realloc does not fail. Prints how many
 * large blocks fit and whether the shrink was refused. */
static int shrink_at_a_full_budget(void) {
  void *blocks[64], *crumbs[256];
  int n = 0, crumb_count = 0;
  while (n < 64 && (blocks[n] = mesa_malloc(1200)) != NULL) ++n;
  while (crumb_count < 256 && (crumbs[crumb_count] = mesa_malloc(1)) != NULL) ++crumb_count;
  void *shrunk = n > 0 ? mesa_realloc(blocks[0], 300) : NULL;
  printf("%d blocks fit; shrink %s\n", n, shrunk != NULL ? "ok" : "refused");
  if (shrunk != NULL) blocks[0] = shrunk;
  for (int i = 0; i < n; ++i) mesa_free(blocks[i]);
  for (int i = 0; i < crumb_count; ++i) mesa_free(crumbs[i]);
  return 0;
}

/* An 800-byte block shrunk to 100 bytes, then grown to 500: under limit=1000 with a debug word
 * the shrink stays in place (the budget has no room to move it) and the growth is refused, as the
 * block still holds its 800 bytes. Prints the outcomes. */
static int shrink_then_grow(void) {
  void *p = mesa_malloc(800);
  void *shrunk = p != NULL ? mesa_realloc(p, 100) : NULL;
  if (shrunk != NULL) p = shrunk;
  void *grown = p != NULL ? mesa_realloc(p, 500) : NULL;
  if (grown != NULL) p = grown;
  printf("shrink 800 -> 100: %s; grow 100 -> 500: %s\n", shrunk != NULL ? "ok" : "refused",
         grown != NULL ? "ok" : "refused");
  mesa_free(p);
  return 0;
}

/* A 600-byte block grown to 700: under limit=1000 the growing realloc is refused, as it holds
 * both blocks until the copy is made. Prints the outcome. */
static int grow_realloc(void) {
  void *p = mesa_malloc(600);
  void *q = p != NULL ? mesa_realloc(p, 700) : NULL;
  printf("realloc 600 -> 700: %s\n", q != NULL ? "ok" : "refused");
  mesa_free(q != NULL ? q : p);
  return 0;
}

/* A block freed by an exit handler registered before the first allocation, which made
 * MESA_ALLOC_DEBUG register its own: that handler runs first and finishes the trace, then this
 * one frees the block. */
static void *kept_until_exit;

static void free_kept_block(void) { mesa_free(kept_until_exit); }

static int free_at_exit(void) {
  atexit(free_kept_block);
  kept_until_exit = mesa_malloc(24);
  return kept_until_exit != NULL ? 0 : 1;
}

/* An exit handler registered before the first allocation frees its block through a pointer 8
 * bytes inside it (the debug layer reports the invalid free after the trace was finished), then
 * frees it. */
static void free_kept_block_wrongly(void) {
  mesa_free((char *)kept_until_exit + 8);
  mesa_free(kept_until_exit);
}

static int bad_free_at_exit(void) {
  atexit(free_kept_block_wrongly);
  kept_until_exit = mesa_malloc(24);
  return kept_until_exit != NULL ? 0 : 1;
}

/* Allocates and frees, then ends the process with quick_exit: no atexit handler runs. */
static int allocate_then_quick_exit(void) {
  void *p = mesa_malloc(24);
  mesa_free(p);
  quick_exit(p != NULL ? 0 : 1);
}

/* Keeps three blocks, then runs this program again in the same process ("exec_second"): the trace
 * file this image opened must not be emptied by the next image's. */
static int exec_self(void) {
  for (int i = 0; i < 3; ++i) (void)mesa_malloc(1000 + (size_t)i);
  printf("first image, pid %d\n", (int)getpid());
  fflush(stdout);
  execl("/proc/self/exe", "c_debug_program", "exec_second", (char *)NULL);
  perror("execl");
  return 1;
}

static int exec_second(void) {
  mesa_free(mesa_malloc(7));
  puts("second image");
  return 0;
}

/* Allocates, then ends the process with _exit: no exit handler runs. */
static int allocate_then_exit_at_once(void) {
  void *p = mesa_malloc(24);
  mesa_free(p);
  _exit(p != NULL ? 0 : 1);
}

/* A malloc, a shrinking realloc, two mallocs: the program's allocations 0 to 3, whatever the
 * debug words (fail=N fails call N). Prints what each returned; a failed realloc must leave the
 * block whole. */
static int shrink_then_allocate(void) {
  char *a = mesa_malloc(100);
  if (a != NULL) memset(a, 'a', 100);
  char *b = a != NULL ? mesa_realloc(a, 50) : NULL;
  int kept = 1;
  if (a != NULL && b == NULL) {
    for (int i = 0; i < 100; ++i) kept &= a[i] == 'a';
  }
  void *c = mesa_malloc(10);
  void *d = mesa_malloc(10);
  printf("malloc %s, shrinking realloc %s, malloc %s, malloc %s\n", a ? "ok" : "NULL",
         b           ? "ok"
         : a && kept ? "NULL (block kept)"
                     : "NULL",
         c ? "ok" : "NULL", d ? "ok" : "NULL");
  mesa_free(b != NULL ? b : a);
  mesa_free(c);
  mesa_free(d);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "leak";
  if (strcmp(mode, "leak") == 0) {
    leak_some();
    puts("done");
    return 0;
  }
  if (strcmp(mode, "overrun") == 0) return overrun();
  if (strcmp(mode, "overrun_at_a_functions_first_instruction") == 0)
    return overrun_at_a_functions_first_instruction();
  if (strcmp(mode, "overrun_on_a_small_signal_stack") == 0)
    return overrun_on_a_small_signal_stack();
  if (strcmp(mode, "underrun") == 0) return underrun();
  if (strcmp(mode, "write_after_free") == 0) return write_after_free();
  if (strcmp(mode, "realloc_freed") == 0) return realloc_freed();
  if (strcmp(mode, "free_twice") == 0) return free_twice();
  if (strcmp(mode, "write_past_freed_end") == 0) return write_past_freed_end();
  if (strcmp(mode, "foreign_fault_then_overrun") == 0) return foreign_fault_then_overrun();
  if (strcmp(mode, "many_guarded") == 0) return many_guarded();
  if (strcmp(mode, "reporter_then_overrun") == 0) return reporter_then_overrun();
  if (strcmp(mode, "fork_child_exits") == 0) return fork_child_exits();
  if (strcmp(mode, "fork_while_threads_allocate") == 0) return fork_while_threads_allocate();
  if (strcmp(mode, "fork_handlers_allocate") == 0) return fork_handlers_allocate();
  if (strcmp(mode, "fork_while_the_layers_are_made") == 0) return fork_while_the_layers_are_made();
  if (strcmp(mode, "small") == 0) return try_allocations(3, 100);
  if (strcmp(mode, "large") == 0) return try_allocations(2, 5000);
  if (strcmp(mode, "shrink_full") == 0) return shrink_at_a_full_budget();
  if (strcmp(mode, "shrink_then_allocate") == 0) return shrink_then_allocate();
  if (strcmp(mode, "grow_realloc") == 0) return grow_realloc();
  if (strcmp(mode, "shrink_then_grow") == 0) return shrink_then_grow();
  if (strcmp(mode, "many_small") == 0) return try_allocations(5000, 32);
  if (strcmp(mode, "free_at_exit") == 0) return free_at_exit();
  if (strcmp(mode, "exit_at_once") == 0) return allocate_then_exit_at_once();
  if (strcmp(mode, "bad_free_at_exit") == 0) return bad_free_at_exit();
  if (strcmp(mode, "quick_exit") == 0) return allocate_then_quick_exit();
  if (strcmp(mode, "exec_self") == 0) return exec_self();
  if (strcmp(mode, "exec_second") == 0) return exec_second();
  fprintf(stderr,
          "usage: %s "
          "leak|overrun|overrun_at_a_functions_first_instruction|overrun_on_a_small_signal_stack|"
          "underrun|write_after_free|realloc_freed|free_twice|"
          "write_past_freed_end|"
          "foreign_fault_then_overrun|reporter_then_overrun|many_guarded|fork_child_exits|"
          "fork_while_threads_allocate|fork_handlers_allocate|fork_while_the_layers_are_made|"
          "small|"
          "large|shrink_full|shrink_then_allocate|grow_realloc|many_small|free_at_exit|"
          "exit_at_once|bad_free_at_exit|quick_exit|exec_self\n",
          argv[0]);
  return 2;
}
