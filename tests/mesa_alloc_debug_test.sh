#!/bin/bash
# End to end: a C program switched to debug layers by MESA_ALLOC_DEBUG alone (no recompilation).
# usage: mesa_alloc_debug_test.sh PROGRAM
set -u
program="$1"
failures=0
out="${TEST_TMPDIR:-/tmp}/stderr.txt"

check() {  # check DESCRIPTION EXTENDED_REGEX
  if grep -Eq -- "$2" "$out"; then
    echo "ok: $1"
  else
    echo "FAILED: $1 (no match for: $2)"
    echo "--- stderr was:"
    cat "$out"
    echo "---"
    failures=$((failures + 1))
  fi
}

expect_abnormal_exit() {  # expect_abnormal_exit DESCRIPTION ACTUAL
  if [[ "$2" -ne 0 ]]; then echo "ok: $1 (exit status $2)"; else
    echo "FAILED: $1 (exited normally)"
    failures=$((failures + 1))
  fi
}

expect_status() {  # expect_status DESCRIPTION WANTED ACTUAL
  if [[ "$3" == "$2" ]]; then echo "ok: $1"; else
    echo "FAILED: $1 (exit status $3, wanted $2)"
    failures=$((failures + 1))
  fi
}

# 1. cookie,leaks,stats: the program runs normally; at exit the 40-byte block is reported with
# its allocation stack, and the statistics table is printed.
MESA_ALLOC_DEBUG=cookie,leaks,stats "$program" leak 2>"$out" >/dev/null
expect_status "leak run exits normally" 0 $?
check "one leak line in the fixed format" \
  '^mesa_alloc: leak at 0x[0-9a-f]+ size 40 allocation #2$'
check "the allocation stack names the leaking function" '^    #[0-9]+ 0x[0-9a-f]+ leak_some'
check "leak summary" '^mesa_alloc: leak summary: 40 bytes in 1 blocks from 1 allocation sites$'
check "statistics header" '^tracker +bytes_in_use +peak_bytes'
# Statistics count the program's blocks (with their debug headers: strdup, malloc, calloc, and
# the realloc's new block; 1 live). The debug layer's own block table comes from libc beside
# the stack, so it is not counted (it was, as a sixth allocation still live at exit).
check "statistics row of the default allocator: 4 allocations, 1 live" \
  '^default +[0-9]+ +[0-9]+ +[0-9]+ +1 +[0-9]+ +4 +3 +0 +- *$'
if [[ $(grep -c '^mesa_alloc: leak at' "$out") != 1 ]]; then
  echo "FAILED: exactly one leaked block expected"; failures=$((failures + 1))
fi

# 1b. leaks,unwind: the same report, the stack walked through the unwind tables, with no frame
# of the debug layer or the unwinder in it.
MESA_ALLOC_DEBUG=leaks,unwind "$program" leak 2>"$out" >/dev/null
expect_status "leaks,unwind run exits normally" 0 $?
check "unwind: the allocation stack names the leaking function" \
  '^    #[0-9]+ 0x[0-9a-f]+ leak_some'
check "unwind: main is on the stack" '^    #[0-9]+ 0x[0-9a-f]+ main'
if grep -Eq 'ignored|_Unwind_|capture_stack|debug_resource' "$out"; then
  echo "FAILED: unwind: a warning, or the walk's own frames in the stack"; cat "$out"
  failures=$((failures + 1))
fi

# 1c. leaks,fail=N (the hunt for a failure path's leak; N beyond the program's calls): the fault
# gate on top is one of the library's tables, so the stack still starts at the C API's caller
# (it started in the gate: fault_gate_table::alloc() < alloc_through() < ...).
MESA_ALLOC_DEBUG=leaks,fail=1000000 "$program" leak 2>"$out" >/dev/null
expect_status "leaks,fail=N run exits normally" 0 $?
check "fail=N: the stack starts at the leaking function" '^    #[01] 0x[0-9a-f]+ leak_some'
if grep -Eq 'fault_gate_table|alloc_through|malloc_through_table' "$out"; then
  echo "FAILED: fail=N: the library's frames in the stack"; cat "$out"
  failures=$((failures + 1))
fi

# 2. guard: the overrun faults at the write; the handler names the block first.
MESA_ALLOC_DEBUG=guard "$program" overrun 2>"$out" >/dev/null
status=$?
if [[ $status -eq 139 || ( $status -ne 0 && $status -lt 128 ) ]]; then
  echo "ok: guard overrun killed the program (status $status)"
else
  echo "FAILED: guard overrun: exit status $status"; failures=$((failures + 1))
fi
check "guard crash message" \
  '^mesa_alloc: buffer overrun at 0x[0-9a-f]+ size 64 allocation #1: access at offset 64 hit the guard page$'
# ... then the code that made the access, from the fault's context (a stacks probe: the report
# named the block and its allocation, but not the overrunning code): here main, into which the
# overrun is inlined, or overrun itself.
check "guard: the access site" '^    accessed at:$'
if ! grep -A1 '^    accessed at:$' "$out" | grep -Eq '^    #0 0x[0-9a-f]+ (main|overrun) '; then
  echo "FAILED: guard: the access site's frame #0 is not the overrunning function"
  sed 's/^/  /' "$out"; failures=$((failures + 1))
fi

# 2a. ... also when the bad access is its function's first instruction: frame #0 is that
# instruction, looked up as it is (looked up as a return address, it named the function before).
MESA_ALLOC_DEBUG=guard "$program" overrun_at_a_functions_first_instruction 2>"$out" >/dev/null
status=$?
if [[ $status -eq 77 ]]; then
  echo "skipped: guard overrun at a function's first instruction (not x86-64)"
else
  expect_abnormal_exit "guard overrun at a function's first instruction" $status
  if ! grep -A1 '^    accessed at:$' "$out" | grep -Eq '^    #0 0x[0-9a-f]+ first_instruction_overrun '; then
    echo "FAILED: guard: frame #0 of a first-instruction overrun is not its function"
    sed 's/^/  /' "$out"; failures=$((failures + 1))
  else
    echo "ok: guard: frame #0 of a first-instruction overrun names its function"
  fi
fi

# 2b. the same on the program's own 6 KiB alternate signal stack, registered with SS_AUTODISARM
# (sigaltstack says "none" inside the handler): the report knows the stack from the handler's
# context, leaves out the lookups it has no room for, and still prints every frame's address
# (it used to look names up as on a thread's stack, and died of it after "allocated at:").
MESA_ALLOC_DEBUG=guard,leaks "$program" overrun_on_a_small_signal_stack 2>"$out" >/dev/null
status=$?
if [[ $status -eq 77 ]]; then
  echo "skipped: guard overrun on a small signal stack (under a sanitizer)"
else
  expect_abnormal_exit "guard overrun on a small signal stack" $status
  check "small signal stack: what is left out, said" \
    '^    \(function names (and locations )?left out: [0-9]+ bytes of signal stack left\)$'
  check "small signal stack: the frames' addresses" '^    #0 0x[0-9a-f]+'
fi

# 3. cookie alone: the same overrun is caught at free by the canary, and aborts.
MESA_ALLOC_DEBUG=cookie "$program" overrun 2>"$out" >/dev/null
expect_abnormal_exit "cookie overrun aborts" $?
check "canary message" \
  '^mesa_alloc: buffer overrun at 0x[0-9a-f]+ size 64 allocation #1: byte 64 \(0 past the end\) was overwritten$'

# 3b. guard_under: an underrun faults at the write.
MESA_ALLOC_DEBUG=guard_under "$program" underrun 2>"$out" >/dev/null
expect_abnormal_exit "guard_under underrun kills the program" $?
check "guard_under crash message" \
  '^mesa_alloc: buffer underrun at 0x[0-9a-f]+ size 64 allocation #1: access at offset -1 hit the guard page$'

# 3c. Every debug word at once: a correct program runs as usual, only the leak is reported.
MESA_ALLOC_DEBUG=cookie,fill,quarantine,leaks "$program" leak 2>"$out" >/dev/null
expect_status "all debug words on a correct program" 0 $?
check "only the leak is reported" '^mesa_alloc: leak summary: 40 bytes in 1 blocks'
naming='^mesa_alloc: MESA_ALLOC_DEBUG reports of the mesa_alloc in '
if grep -v 'leak' "$out" | grep -v "$naming" | grep -q '^mesa_alloc:'; then
  echo "FAILED: unexpected diagnostics"; cat "$out"; failures=$((failures + 1)); fi
# A copy of the library inside a shared library (Meson links the program against
# libmesa_alloc.so; Bazel's libmesa_Ualloc... where it does) names it before its reports; one
# linked into the program does not.
if ldd "$program" | grep -Eq 'libmesa_(U)?alloc'; then
  check "the reports name the shared library" "${naming}/.*libmesa_(U)?alloc[^/]*\$"
elif grep -q "$naming" "$out"; then
  echo "FAILED: a copy linked into the program named a library"; cat "$out"
  failures=$((failures + 1))
else
  echo "ok: a copy linked into the program names no library"
fi

# 3d. quarantine: a write after free in a run that frees nothing more is found at exit, when the
# quarantine is checked.
MESA_ALLOC_DEBUG=quarantine "$program" write_after_free 2>"$out" >/dev/null
expect_abnormal_exit "write after free aborts at exit" $?
check "write-after-free message" \
  '^mesa_alloc: write after free at 0x[0-9a-f]+ size 64 allocation #1: byte 7 '

# 3e. guard with stacks: a use after free faults, and the report says where the block was
# freed and where it was allocated (its header is inaccessible by then: the free copied the
# allocation stack out).
MESA_ALLOC_DEBUG=guard,leaks "$program" write_after_free 2>"$out" >/dev/null
expect_abnormal_exit "guard use after free kills the program" $?
check "guard use after free message" \
  '^mesa_alloc: write after free at 0x[0-9a-f]+ size 64 allocation #1: read or write at offset 7 of a freed block$'
for heading in 'accessed at' 'previously freed at' 'allocated at'; do
  if ! grep -A1 "^    $heading:\$" "$out" | grep -Eq '^    #0 0x[0-9a-f]+ (write_after_free|main) '; then
    echo "FAILED: guard use after free: no '$heading:' stack starting in write_after_free"
    sed 's/^/  /' "$out"; failures=$((failures + 1))
  else
    echo "ok: guard use after free: '$heading:' starts in write_after_free"
  fi
done

# 3f. The canary of a freed block is still checked: one byte past its end is a write after free.
MESA_ALLOC_DEBUG=quarantine,cookie "$program" write_past_freed_end 2>"$out" >/dev/null
expect_abnormal_exit "a write past the end of a freed block aborts at exit" $?
check "write past the end of a freed block" \
  '^mesa_alloc: write after free at 0x[0-9a-f]+ size 61 allocation #1: byte 61 \(0 past the end\) of the freed block was overwritten while in quarantine$'

# 3g. guard chains to the program's own SIGSEGV handler: a fault the program recovers leaves
# the guard handler in place, and the next guard page overrun is still explained.
MESA_ALLOC_DEBUG=guard "$program" foreign_fault_then_overrun 2>"$out" >/dev/null
expect_abnormal_exit "guard overrun after a recovered foreign fault kills the program" $?
check "the program's own fault was recovered" '^own fault recovered$'
check "the overrun after it is still explained" \
  '^mesa_alloc: buffer overrun at 0x[0-9a-f]+ size 64 allocation #1: access at offset 64 hit the guard page$'

# 3g'. A one-shot crash reporter (SA_RESETHAND) before the guard layer: the overrun is explained,
# the reporter runs once and the process dies (called on every retry, it looped for ever).
timeout 20 env MESA_ALLOC_DEBUG=guard "$program" reporter_then_overrun 2>"$out" >/dev/null
status=$?
if [[ $status -ne 0 && $status -ne 124 ]]; then echo "ok: one-shot reporter: the process died"
else echo "FAILED: one-shot reporter: exit status $status (124: it looped)"; failures=$((failures + 1)); fi
check "one-shot reporter: the overrun is explained" \
  '^mesa_alloc: buffer overrun at 0x[0-9a-f]+ size 64 allocation #1: access at offset 64 hit the guard page$'
if [[ $(grep -c '^crash reporter called$' "$out") != 1 ]]; then
  echo "FAILED: the one-shot reporter ran $(grep -c '^crash reporter called$' "$out") times"
  failures=$((failures + 1)); else echo "ok: the one-shot reporter ran once"; fi

# 3h. guard with stats: the blocks waiting in guard mode's quarantine are released at exit, so
# a clean run ends with nothing in use (it showed the three blocks as live).
MESA_ALLOC_DEBUG=guard,stats "$program" small 2>"$out" >/dev/null
check "guard,stats: a clean run ends at 0 bytes in use" \
  '^default +0 +[0-9]+ +[0-9]+ +0 +[0-9]+ +3 +3 +0 +- *$'

# 3i. Guard pages past the kernel's limit on mappings (vm.max_map_count; each guard splits a
# mapping): the allocation fails with one line saying why, instead of a block with no guard.
max_maps=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
if (( max_maps > 0 && max_maps <= 70000 )); then
  MESA_ALLOC_DEBUG=guard "$program" many_guarded 2>"$out" >/dev/null
  status=$?
fi
if (( max_maps == 0 || max_maps > 70000 )); then
  echo "skipped: guard pages past the map limit (vm.max_map_count is $max_maps, not the default)"
elif [[ $status == 77 ]]; then
  echo "skipped: guard pages past the map limit (AddressSanitizer dies at the limit itself)"
else
  expect_status "guard pages past the map limit: the program is told, not crashed" 0 $status
  check "the refused guard page is said" \
    '^mesa_alloc: debug allocator [0-9]+: guard pages: no guard page for a 64-byte block; the allocation fails \(mprotect: Cannot allocate memory; raise vm.max_map_count for more guarded blocks\); later failures are not reported$'
  if [[ $(grep -c 'guard pages:' "$out") != 1 ]]; then
    echo "FAILED: one guard-page line expected"; failures=$((failures + 1)); fi
fi

# 3j. fork() while other threads allocate: the layers' locks are held across it, so no child
# waits for a lock that a thread of the parent held at that moment (2-24 in 100 forks hung, 19
# in 20 with trace=).
# Not under AddressSanitizer: its own allocator (GCC 12's) can be left locked in the child.
for words in cookie,leaks quarantine "cookie,trace=${TEST_TMPDIR:-/tmp}/fork_threads.trace"; do
  stdout=$(ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG="$words" "$program" \
    fork_while_threads_allocate 2>"$out")
  status=$?
  if [[ $status == 77 ]]; then
    echo "skipped: fork while threads allocate (AddressSanitizer's allocator is not fork-safe)"
  else
    expect_status "fork while threads allocate ($words): $stdout" 0 $status
  fi
done
rm -f "${TEST_TMPDIR:-/tmp}/fork_threads.trace"

# 3k. A program's fork handlers that allocate, registered before its first allocation: the
# layers' handlers are registered when the library is loaded, so they run around the program's
# (registered at the first debug layer or trace, they ran inside them: the prepare handler
# waited for a lock its own thread held, for ever, and under trace= the process ended in
# std::terminate, "Resource deadlock avoided").
for words in cookie guard,leaks "leaks,trace=${TEST_TMPDIR:-/tmp}/fork_handlers.trace"; do
  stdout=$(ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG="$words" "$program" \
    fork_handlers_allocate 2>"$out")
  status=$?
  expect_status "fork handlers that allocate ($words): $stdout $(head -c 300 "$out")" 0 $status
done
rm -f "${TEST_TMPDIR:-/tmp}/fork_handlers.trace"

# 3l. A fork racing another thread's first allocation, which makes the trace after the library's
# prepare handler found none: the child resets that trace's locks too (it waited for ever on a
# lock the other thread held at the fork in 2 to 7 of 10 runs). Twenty processes, one fork each.
race_trace="${TEST_TMPDIR:-/tmp}/fork_race.trace"
race_failures=0
for run in $(seq 20); do
  stdout=$(MESA_ALLOC_DEBUG="trace=$race_trace" "$program" fork_while_the_layers_are_made 2>"$out")
  status=$?
  rm -f "$race_trace"*
  [[ $status == 77 ]] && break
  if [[ $status != 0 ]]; then
    echo "run $run: $stdout $(head -c 300 "$out")"
    race_failures=$((race_failures + 1))
  fi
done
if [[ $status == 77 ]]; then
  echo "skipped: fork while the trace is made (AddressSanitizer's allocator is not fork-safe)"
elif (( race_failures == 0 )); then
  echo "ok: fork while the trace is made: 20 children went on"
else
  echo "FAILED: fork while the trace is made: $race_failures of 20 children hung or failed"
  failures=$((failures + 1))
fi

# 3e. A realloc of a freed block says so.
MESA_ALLOC_DEBUG=cookie "$program" realloc_freed 2>"$out" >/dev/null
check "realloc of a freed block" \
  '^mesa_alloc: double free at 0x[0-9a-f]+ size 16 allocation #1: realloc of a block that was already freed \(its memory went back upstream: the address may now be another allocator.s block\)$'
# ... and where: the realloc's stack, from the program's call of mesa_realloc (no frame of the
# library's first), though no allocation stack is recorded. realloc_freed may be inlined in main.
check "where the bad realloc was made" '^    reallocated at:$'
if ! grep -A1 '^    reallocated at:$' "$out" | grep -qE '^    #0 0x[0-9a-f]+ (realloc_freed|main) '; then
  echo "FAILED: the bad realloc's stack starts in realloc_freed"; cat "$out"
  failures=$((failures + 1)); fi
# A second mesa_free: its stack starts in the program too, in an unoptimised build as well, where
# mesa_free calls its table path instead of jumping there.
MESA_ALLOC_DEBUG=cookie "$program" free_twice 2>"$out" >/dev/null
check "a second mesa_free" '^mesa_alloc: double free at 0x[0-9a-f]+ size 16 allocation #1: '
if ! grep -A1 '^    freed at:$' "$out" | grep -qE '^    #0 0x[0-9a-f]+ (free_twice|main) '; then
  echo "FAILED: the second free's stack starts in free_twice"; cat "$out"
  failures=$((failures + 1)); fi
# With stacks and a quarantine, where the block was freed before, too.
MESA_ALLOC_DEBUG=leaks,quarantine "$program" realloc_freed 2>"$out" >/dev/null
check "where the block was freed before" '^    previously freed at:$'
check "and where it was allocated" '^    allocated at:$'

# 4. Unknown or malformed words: one warning each, then ignored.
MESA_ALLOC_DEBUG=bogus,cookie,fail=x "$program" small 2>"$out" >/dev/null
expect_status "unknown words are ignored" 0 $?
check "warning for an unknown word" "^mesa_alloc: MESA_ALLOC_DEBUG: unknown word 'bogus' ignored"
check "warning for a bad number" "^mesa_alloc: MESA_ALLOC_DEBUG: bad number in 'fail=x' ignored"
if [[ $(grep -c 'MESA_ALLOC_DEBUG' "$out") != 2 ]]; then
  echo "FAILED: exactly two warnings expected"; failures=$((failures + 1)); fi

# 4a. Blanks around words and around '=' are not part of them: "cookie, leaks" turns leak
# reports on, and "trace = FILE" names FILE.
blank_trace="${TEST_TMPDIR:-/tmp}/blank.trace"
rm -f "$blank_trace"
MESA_ALLOC_DEBUG="cookie, leaks , trace = $blank_trace" ASAN_OPTIONS=detect_leaks=0 \
  "$program" leak 2>"$out" >/dev/null
[[ -s "$blank_trace" ]] || { echo "FAILED: 'trace = FILE' wrote no FILE"
  failures=$((failures + 1)); }
check "blanks around words" '^mesa_alloc: leak at 0x[0-9a-f]+ size 40 allocation #'
if grep -q 'unknown word' "$out"; then
  echo "FAILED: a blank made a word unknown"; failures=$((failures + 1)); fi

# 4b. Words that set one thing twice, differently: a warning each; the last one counts (here
# guard_under, so the underrun faults at the write).
MESA_ALLOC_DEBUG=guard,guard_under,limit=1m,limit=2m "$program" underrun 2>"$out" >/dev/null
check "warning for a guard word overriding another" \
  "^mesa_alloc: MESA_ALLOC_DEBUG: 'guard_under' overrides an earlier word \(the last one counts\)$"
check "warning for a second limit" "^mesa_alloc: MESA_ALLOC_DEBUG: 'limit=2m' overrides an earlier word"
check "the last guard word counts" \
  '^mesa_alloc: buffer underrun at 0x[0-9a-f]+ size 64 allocation #1: access at offset -1 hit the guard page$'
MESA_ALLOC_DEBUG=cookie,cookie,limit=4k,limit=4096 "$program" small 2>"$out" >/dev/null
expect_status "repeating a word with the same meaning" 0 $?
if grep -q 'overrides' "$out"; then
  echo "FAILED: a repeated word with the same meaning warned"; failures=$((failures + 1)); fi

# 4c. A program that runs itself again (exec) keeps its trace: the descriptor, and with it the
# file's lock, lives on into the next image, which writes FILE.<pid>. With a close-on-exec
# descriptor the lock went with the exec, and the next image emptied the file and wrote its own
# trace there (a launcher that forked, exited, and whose child ran the real program lost its
# finished trace the same way).
exec_trace="${TEST_TMPDIR:-/tmp}/exec.trace"
rm -f "$exec_trace" "$exec_trace".*
stdout=$(MESA_ALLOC_DEBUG="trace=$exec_trace" "$program" exec_self 2>"$out")
pid=$(sed -n 's/^first image, pid \([0-9]*\)$/\1/p' <<<"$stdout")
if [[ -n "$pid" && "$stdout" == *"second image"* && -s "$exec_trace.$pid" ]]; then
  echo "ok: the exec'ed image writes FILE.<pid>"; else
  echo "FAILED: exec: printed '$stdout', files: $(ls "$exec_trace"*)"; failures=$((failures + 1)); fi
check "the exec'ed image says where it writes" \
  "^mesa_alloc: trace file .*exec.trace is being written by another writer .*; this one writes .*exec.trace.$pid$"
rm -f "$exec_trace" "$exec_trace".*

# 5. fail=N and limit=BYTES.
stdout=$(MESA_ALLOC_DEBUG=fail=1 "$program" small 2>"$out")
if [[ "$stdout" == "allocation 1 of 100 bytes failed" ]]; then echo "ok: fail=1"; else
  echo "FAILED: fail=1 printed: $stdout"; failures=$((failures + 1)); fi
stdout=$(MESA_ALLOC_DEBUG=limit=4k,stats "$program" large 2>"$out")
if [[ "$stdout" == $'allocation 0 of 5000 bytes failed\nallocation 1 of 5000 bytes failed' ]]; then
  echo "ok: limit=4k"; else echo "FAILED: limit=4k printed: $stdout"; failures=$((failures + 1)); fi
check "failed allocations counted against the limit" '^default( +[0-9]+){6} +0 +2 +4096 *$'
check "the first refusal is announced" \
  '^mesa_alloc: MESA_ALLOC_DEBUG: limit=4096 refused an allocation of 5000 bytes \(0 in use\); later refusals are only counted$'
if [[ $(grep -c 'refused an allocation' "$out") != 1 ]]; then
  echo "FAILED: exactly one refusal line expected"; failures=$((failures + 1)); fi

# A debug word stacks the debug layer over the limit: the sizes in the line are its blocks, and
# the line says so (5000 bytes asked for are refused as 5000 and the layer's header).
stdout=$(MESA_ALLOC_DEBUG=limit=4k,cookie "$program" large 2>"$out")
check "a refusal under a debug layer says its sizes are the layer's blocks" \
  "^mesa_alloc: MESA_ALLOC_DEBUG: limit=4096 refused an allocation of 5[0-9]{3} bytes \(0 in use; both sizes are the debug layer's blocks, its headers and padding included\); later refusals are only counted$"

# 5a'. A growing realloc holds the old block and the new one until the copy: under limit=1000,
# 600 -> 700 is refused, and the line says it was a realloc and why.
stdout=$(MESA_ALLOC_DEBUG=limit=1000 "$program" grow_realloc 2>"$out")
if [[ "$stdout" == "realloc 600 -> 700: refused" ]]; then echo "ok: growing realloc refused"; else
  echo "FAILED: limit=1000 grow_realloc printed: $stdout"; failures=$((failures + 1)); fi
check "a refused realloc is named as one" \
  '^mesa_alloc: MESA_ALLOC_DEBUG: limit=1000 refused a realloc from 600 to 700 bytes \(600 in use, the old block included: a realloc that moves the block holds both until the copy is made\); later refusals are only counted$'

# 5a''. A file size limit (ulimit -f) ends the trace with a line: the write past it would raise
# SIGXFSZ, whose default action killed the traced program.
fsize_trace="${TEST_TMPDIR:-/tmp}/fsize.trace"
stdout=$( (ulimit -f 100; MESA_ALLOC_DEBUG="trace=$fsize_trace" "$program" many_small) 2>"$out")
expect_status "a traced program under ulimit -f runs to its end" 0 $?
check "the file size limit ends the trace with a line" \
  '^mesa_alloc: trace file: write failed after 102400 bytes \(the file size limit, 102400 bytes, is reached\); the trace ends there and later events are dropped$'
if [[ $(stat -c %s "$fsize_trace") != 102400 ]]; then
  echo "FAILED: the trace under ulimit -f 100 is $(stat -c %s "$fsize_trace") bytes, not 102400 (ulimit -f counts KiB)"
  failures=$((failures + 1)); fi
# The limit is a regular file's only: a trace written into a pipe under the same ulimit is
# whole (it used to stop at the limit, saying the file size limit was reached).
pipe_trace="${TEST_TMPDIR:-/tmp}/fsize_pipe.trace"
( (ulimit -f 100; MESA_ALLOC_DEBUG="trace=/dev/fd/3" "$program" many_small 3>&1 >/dev/null) |
  cat >"$pipe_trace") 2>"$out"
if grep -q "file size limit" "$out"; then
  echo "FAILED: a trace into a pipe stopped at the file size limit"; failures=$((failures + 1)); fi
if [[ $(stat -c %s "$pipe_trace") -le $(stat -c %s "$fsize_trace") ]]; then
  echo "FAILED: the trace through a pipe under ulimit -f 100 is $(stat -c %s "$pipe_trace") bytes"
  failures=$((failures + 1)); fi
rm -f "$fsize_trace" "$pipe_trace"

# 5a. A limit past the address space (one environment for 32- and 64-bit processes) is taken as
# the largest there is, with a line, never wrapped: on i386, limit=4g once became a budget of 0.
stdout=$(MESA_ALLOC_DEBUG=limit=4g "$program" small 2>"$out")
if [[ $(grep -c 'failed' <<<"$stdout") == 0 ]]; then echo "ok: limit=4g refuses nothing"; else
  echo "FAILED: limit=4g printed: $stdout"; failures=$((failures + 1)); fi
stdout=$(MESA_ALLOC_DEBUG=limit=18446744073709551615 "$program" small 2>"$out")
if [[ $(grep -c 'failed' <<<"$stdout") == 0 ]]; then echo "ok: limit=2^64-1 refuses nothing"; else
  echo "FAILED: limit=2^64-1 printed: $stdout"; failures=$((failures + 1)); fi
# 2^64-1 is SIZE_MAX on x86-64 (a tracker's "no limit"), more than a size_t on i386.
check "a limit past the address space is said" \
  "^mesa_alloc: MESA_ALLOC_DEBUG: 'limit=18446744073709551615' is (the largest size_t, which a tracker takes as no limit|more than a size_t holds here); the limit is [0-9]+ bytes$"
if [[ $(od -An -tu1 -j4 -N1 "$program") -eq 2 ]]; then  # a 64-bit ELF program
  check "the largest size_t is named as such" \
    "^mesa_alloc: MESA_ALLOC_DEBUG: 'limit=18446744073709551615' is the largest size_t, which a tracker takes as no limit; the limit is 18446744073709551614 bytes$"
fi

# A limit past 64 bits is well formed: taken as the largest too, not ignored as a bad number.
MESA_ALLOC_DEBUG=limit=99999999999999999999 "$program" small >/dev/null 2>"$out"
check "a limit past 64 bits is said" \
  "^mesa_alloc: MESA_ALLOC_DEBUG: 'limit=99999999999999999999' is more than a size_t holds here; the limit is [0-9]+ bytes$"

# 5a'. trace= naming a FIFO with no reader yet: the first allocation waits for one, saying so
# (it hung in silence), and the program runs on once a reader comes.
fifo="${TEST_TMPDIR:-/tmp}/trace.fifo"
rm -f "$fifo" && mkfifo "$fifo"
MESA_ALLOC_DEBUG="trace=$fifo" "$program" small >/dev/null 2>"$out" &
traced=$!
for _ in $(seq 100); do
  grep -q 'waiting for one' "$out" && break
  sleep 0.1
done
timeout 60 cat "$fifo" >/dev/null
wait $traced
expect_status "a FIFO trace whose reader comes later: the program runs on" 0 $?
check "a FIFO with no reader is waited for with a line" \
  "^mesa_alloc: trace file .*/trace.fifo is a FIFO with no reader; waiting for one$"
rm -f "$fifo"

# 5b. The debug layer's own bookkeeping is not the program's: a small limit and fail=N see only
# the program's blocks (with their headers), so cookie,limit=1000 lets its three 100-byte
# blocks through, and cookie,fail=N fails the program's allocation N.
stdout=$(MESA_ALLOC_DEBUG=cookie,limit=1000 "$program" small 2>"$out")
if [[ $(grep -c 'failed' <<<"$stdout") == 0 && ! -s "$out" ]]; then
  echo "ok: cookie,limit=1000 charges the program's blocks only"; else
  echo "FAILED: cookie,limit=1000 printed: $stdout $(cat "$out")"; failures=$((failures + 1)); fi
for n in 0 1 2; do
  stdout=$(MESA_ALLOC_DEBUG=cookie,fail=$n "$program" small 2>/dev/null)
  if [[ "$stdout" == "allocation $n of 100 bytes failed" ]]; then
    echo "ok: cookie,fail=$n fails the program's allocation $n"; else
    echo "FAILED: cookie,fail=$n printed: $stdout"; failures=$((failures + 1)); fi
done
# 5b'. fail=N fails the program's call N, the same call whatever the other words: a shrinking
# realloc is an allocation point (it fails, its block kept, under every word; it was absorbed by
# the debug layer's shrink in place, or hidden by the tracking layer's, and later calls shifted).
wanted=("malloc NULL, shrinking realloc NULL, malloc ok, malloc ok"
        "malloc ok, shrinking realloc NULL (block kept), malloc ok, malloc ok"
        "malloc ok, shrinking realloc ok, malloc NULL, malloc ok"
        "malloc ok, shrinking realloc ok, malloc ok, malloc NULL"
        "malloc ok, shrinking realloc ok, malloc ok, malloc ok")
for words in "" ,stats ,cookie ,guard ,leaks ",trace=${TEST_TMPDIR:-/tmp}/fail_n.trace" \
    ,stats,limit=1m,cookie,quarantine; do
  for n in 0 1 2 3 4; do
    stdout=$(ASAN_OPTIONS=detect_leaks=0 MESA_ALLOC_DEBUG=fail=$n$words "$program" \
      shrink_then_allocate 2>/dev/null)
    if [[ "$stdout" == "${wanted[$n]}" ]]; then echo "ok: fail=$n$words"; else
      echo "FAILED: fail=$n$words printed: $stdout"; failures=$((failures + 1)); fi
  done
done
# 5c. A shrinking realloc at a full budget is not refused, with a debug layer above the limit
# too: 1200-byte blocks with their headers, then 1-byte ones, fill limit=5k, and the first
# large block then shrinks in place.
for words in limit=5k cookie,limit=5k leaks,limit=5k; do
  stdout=$(MESA_ALLOC_DEBUG=$words "$program" shrink_full 2>/dev/null)
  if [[ "$stdout" == *"fit; shrink ok" && "$stdout" != "0 blocks"* ]]; then
    echo "ok: $words does not refuse a shrink at a full budget"; else
    echo "FAILED: $words printed: $stdout"; failures=$((failures + 1)); fi
done
# 5c'. The debug layer's attempt to move a shrinking block, which the budget refuses and the layer
# absorbs by shrinking in place, is no refusal of the program's: neither announced nor counted.
# The line is kept for the refusal the program sees next (it used to go to the absorbed one, and
# the program's real refusal came with no line).
stdout=$(MESA_ALLOC_DEBUG=limit=1000,cookie,stats "$program" shrink_then_grow 2>"$out")
if [[ "$stdout" == "shrink 800 -> 100: ok; grow 100 -> 500: refused" ]]; then
  echo "ok: limit=1000,cookie shrinks in place and refuses the growth"; else
  echo "FAILED: limit=1000,cookie shrink_then_grow printed: $stdout"; failures=$((failures + 1)); fi
check "the refusal announced is the growth's, not the absorbed shrink's" \
  "^mesa_alloc: MESA_ALLOC_DEBUG: limit=1000 refused an allocation of 5[0-9]{2} bytes \(8[0-9]{2} in use; both sizes are the debug layer's blocks, its headers and padding included\); later refusals are only counted$"
if [[ $(grep -c 'refused a' "$out") != 1 ]]; then
  echo "FAILED: one refusal line expected:"; cat "$out"; failures=$((failures + 1)); fi
check "only the refusal the program saw is counted" '^default( +[0-9]+){7} +1 +1000 *$'
MESA_ALLOC_DEBUG=limit=1m "$program" small 2>"$out" >/dev/null
if [[ -s "$out" ]]; then echo "FAILED: a limit that is never reached printed:"; cat "$out"
  failures=$((failures + 1)); else echo "ok: an unreached limit is silent"; fi

exit $failures
