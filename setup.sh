#!/bin/bash
# setup.sh — installs the Debian 12 packages mesa_alloc builds, tests and benchmarks with.
# Idempotent: installs only what is missing. Works as root or through sudo. Downloads nothing
# but Debian packages.
#
#   ./setup.sh                   the packages of the build, the tests and the benchmarks
#   ./setup.sh --i386            those, and Debian's i386 packages the 32-bit job (.ci/i386)
#                                links with; adds i386 as a foreign dpkg architecture
#   ./setup.sh [--i386] --check  exit 0 if those packages are all installed, 1 if not
#                                (installs nothing)
set -euo pipefail

i386=false
check_only=false
for arg in "$@"; do
  case "$arg" in
    --i386) i386=true ;;
    --check) check_only=true ;;
    *) echo "usage: $0 [--i386] [--check]" >&2; exit 2 ;;
  esac
done

packages=(
  bazel-bootstrap     # the build (WORKSPACE mode, offline)
  g++ clang binutils  # compilers (the poison test uses both), nm/objdump for the audit
  python3             # alloc_audit checker, benchmark comparison script
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libmimalloc-dev
  libvulkan-dev mesa-vulkan-drivers vulkan-tools  # Vulkan loader, lavapipe, vulkaninfo
  meson ninja-build pkg-config                    # the Meson build
  clang-format
  valgrind libc6-dbg  # benchmarks/compiler_instructions.py (cachegrind; glibc function names)
)

# gcc -m32 on x86-64 hosts: header_hygiene_test compiles the library for i386 too (from the
# amd64 archive; other hosts skip that part of the test).
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  packages+=(g++-multilib)
fi

# The 32-bit job: Abseil and GoogleTest built for i386, and glibc's i386 symbols (cachegrind
# names the allocator's functions with them in compiler_instructions_test).
i386_packages=(libabsl-dev:i386 libgtest-dev:i386 libgmock-dev:i386 libc6-dbg:i386)
if $i386; then
  packages+=("${i386_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if $check_only; then
  [ "${#missing[@]}" -eq 0 ]
  exit
fi
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if $i386 && ! dpkg --print-foreign-architectures | grep -qx i386; then
  "${sudo[@]}" dpkg --add-architecture i386
fi
# An index that fails to update (a mirror mid-sync, often the i386 or security one) need not
# hold what is missing: warn, and let the install say whether the indexes it has are enough.
update_failed=false
if ! "${sudo[@]}" apt-get update -qq; then
  update_failed=true
  echo "setup.sh: warning: apt-get update failed for some index; installing from what it has" >&2
fi
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  echo "setup.sh: could not install: ${missing[*]}" >&2
  if $update_failed; then
    echo "setup.sh: apt-get update had failed: is Debian's package archive reachable?" >&2
  fi
  exit 1
fi
echo "setup.sh: done"
