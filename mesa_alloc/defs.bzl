"""Bazel helpers that keep a component on mesa_alloc.

mesa_cc_library: a cc_library with mesa_alloc/poison.h force-included into every source, so a
    direct malloc/calloc/realloc/free/strdup/aligned_alloc/posix_memalign call fails to compile.
alloc_audit_test: a test that reads the relocations of a cc_library's object files (objdump)
    and fails, naming the symbol and the object file, if they reference libc's allocation
    functions or the global operator new/delete (every mangled form: sized, aligned, nothrow,
    arrays), from code or from data (function-pointer tables). This catches what a #define
    cannot: STL code instantiated with std::allocator in inline headers.
"""

def mesa_cc_library(name, copts = [], deps = [], **kwargs):
    native.cc_library(
        name = name,
        copts = copts + ["-include", "mesa_alloc/poison.h"],
        deps = deps + ["//mesa_alloc:poison"],
        **kwargs
    )

def _archives_of(target):
    archives = []
    for linker_input in target[CcInfo].linking_context.linker_inputs.to_list():
        if linker_input.owner != target.label:
            continue
        for library in linker_input.libraries:
            for archive in [library.static_library, library.pic_static_library]:
                if archive != None:
                    archives.append(archive)
    return archives

def _alloc_audit_test_impl(ctx):
    archives = _archives_of(ctx.attr.target)
    if not archives:
        fail("alloc_audit_test: %s has no object files to audit" % ctx.attr.target.label)
    args = [
        "--allow=" + ",".join(ctx.attr.allow),
        "--expect=" + ",".join(ctx.attr.expect_symbols),
    ] + [a.short_path for a in archives]
    script = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(
        output = script,
        content = "#!/bin/bash\nexec {checker} {args}\n".format(
            checker = ctx.executable._checker.short_path,
            args = " ".join(["'%s'" % a for a in args]),
        ),
        is_executable = True,
    )
    runfiles = ctx.runfiles(files = archives + [ctx.executable._checker])
    return [DefaultInfo(executable = script, runfiles = runfiles)]

_alloc_audit_test = rule(
    implementation = _alloc_audit_test_impl,
    attrs = {
        "target": attr.label(mandatory = True, providers = [CcInfo]),
        "allow": attr.string_list(),
        "expect_symbols": attr.string_list(),
        "_checker": attr.label(
            default = "//tools:alloc_audit",
            executable = True,
            cfg = "target",
        ),
    },
    test = True,
)

def alloc_audit_test(name, target, allow = [], expect_symbols = [], **kwargs):
    """Audits `target`'s own object files (not its deps').

    Args:
      name: test name.
      target: the cc_library to audit.
      allow: object files (base names without extension, e.g. "libc_allocator") that may
          reference libc allocation; listed explicitly so every exception is visible.
      expect_symbols: for a negative test of the audit itself: the test passes only if the audit
          finds violations and names each of these symbols.
      **kwargs: passed to the test rule (tags, size, ...).
    """
    _alloc_audit_test(
        name = name,
        target = target,
        allow = allow,
        expect_symbols = expect_symbols,
        **kwargs
    )
