// Two copies of mesa_alloc in one process, as when the Vulkan loader loads two drivers that
// each link it statically (RTLD_LOCAL, side by side), are independent: neither takes the
// other's blocks or sees the other's default allocator, and no symbol of ours is one the dynamic
// linker merges across libraries (STB_GNU_UNIQUE, which GCC gives variables defined in headers
// and which crosses RTLD_LOCAL; see mesa_alloc/internal/per_copy.h).
//
// The modules export everything, as a library built without a version script does; this
// program links no mesa_alloc of its own, since a copy here, in the global scope, would take
// the place of theirs (ELF interposition: README, "Two drivers in one process").
//
// usage: two_copies_test DRIVER_A.so DRIVER_B.so [LIBRARY.so ...]
//   (two builds of two_copies_driver.cc; each LIBRARY is checked for merged symbols too)
#include <dlfcn.h>
#include <glob.h>
#include <gtest/gtest.h>
#include <link.h>  // ElfW

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "mesa_alloc/mesa_alloc.h"  // the table type only: nothing of the library is linked

namespace {

std::string module_path[2];
std::vector<std::string> library_paths;

// A C table that counts its allocations, over malloc.
struct counting_table {
  int allocations = 0;
  int live = 0;
  mesa_allocator table{this, &alloc, &realloc_block, &free_block, nullptr, nullptr};

  static void *alloc(void *self, std::size_t size, std::size_t, mesa_alloc_scope) {
    auto *t = static_cast<counting_table *>(self);
    ++t->allocations;
    ++t->live;
    return std::malloc(size);
  }
  static void *realloc_block(void *self, void *p, std::size_t size, std::size_t alignment,
                             mesa_alloc_scope scope) {
    if (p == nullptr) return alloc(self, size, alignment, scope);
    return std::realloc(p, size);
  }
  static void free_block(void *self, void *p) {
    if (p == nullptr) return;
    --static_cast<counting_table *>(self)->live;
    std::free(p);
  }
};

// One loaded driver module and its C interface.
class driver {
 public:
  explicit driver(const std::string &path) : handle_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    if (handle_ == nullptr) {
      ADD_FAILURE() << "dlopen " << path << ": " << dlerror();
      return;
    }
    pool_create = find<void *(*)()>("driver_pool_create");
    pool_allocate = find<void *(*)(void *, std::size_t)>("driver_pool_allocate");
    pool_deallocate = find<void (*)(void *, void *, std::size_t)>("driver_pool_deallocate");
    pool_destroy = find<void (*)(void *)>("driver_pool_destroy");
    table_create = find<const mesa_allocator *(*)()>("driver_table_create");
    table_destroy = find<void (*)(const mesa_allocator *)>("driver_table_destroy");
    set_default_allocator =
        find<const mesa_allocator *(*)(const mesa_allocator *)>("driver_set_default_allocator");
    malloc = find<void *(*)(std::size_t)>("driver_malloc");
    free = find<void (*)(void *)>("driver_free");
    tracking_roundtrip = find<int (*)()>("driver_tracking_roundtrip");
  }
  driver(const driver &) = delete;
  driver &operator=(const driver &) = delete;
  ~driver() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  bool loaded() const { return handle_ != nullptr && free != nullptr; }

  void *(*pool_create)() = nullptr;
  void *(*pool_allocate)(void *, std::size_t) = nullptr;
  void (*pool_deallocate)(void *, void *, std::size_t) = nullptr;
  void (*pool_destroy)(void *) = nullptr;
  const mesa_allocator *(*table_create)() = nullptr;
  void (*table_destroy)(const mesa_allocator *) = nullptr;
  const mesa_allocator *(*set_default_allocator)(const mesa_allocator *) = nullptr;
  void *(*malloc)(std::size_t) = nullptr;
  void (*free)(void *) = nullptr;
  int (*tracking_roundtrip)() = nullptr;

 private:
  template <class F>
  F find(const char *name) {
    void *f = dlsym(handle_, name);
    if (f == nullptr) ADD_FAILURE() << "dlsym " << name << ": " << dlerror();
    return reinterpret_cast<F>(f);
  }

  void *handle_;
};

TEST(TwoCopies, PoolsKeepTheirOwnBlocks) {
  driver a(module_path[0]), b(module_path[1]);
  ASSERT_TRUE(a.loaded() && b.loaded());
  void *pool_a = a.pool_create();
  void *pool_b = b.pool_create();  // the first pool of its copy too: the same pool number
  void *x = a.pool_allocate(pool_a, 32);
  a.pool_deallocate(pool_a, x, 32);  // x is on this thread's cache of pool_a
  void *y = b.pool_allocate(pool_b, 32);
  EXPECT_NE(y, x) << "driver B's pool handed out a block of driver A's pool";
  b.pool_deallocate(pool_b, y, 32);
  EXPECT_EQ(a.pool_allocate(pool_a, 32), x);  // each pool's cache still holds its own block
  EXPECT_EQ(b.pool_allocate(pool_b, 32), y);
  a.pool_deallocate(pool_a, x, 32);
  b.pool_deallocate(pool_b, y, 32);
  a.pool_destroy(pool_a);
  b.pool_destroy(pool_b);
}

TEST(TwoCopies, DefaultAllocatorsAreSeparate) {
  driver a(module_path[0]), b(module_path[1]);
  ASSERT_TRUE(a.loaded() && b.loaded());
  counting_table counting;
  const mesa_allocator *previous = a.set_default_allocator(&counting.table);
  void *from_a = a.malloc(48);
  EXPECT_EQ(counting.allocations, 1);
  void *from_b = b.malloc(48);
  EXPECT_EQ(counting.allocations, 1) << "driver B allocated through driver A's default";
  b.free(from_b);
  a.free(from_a);
  EXPECT_EQ(counting.live, 0);
  a.set_default_allocator(previous);
}

TEST(TwoCopies, CTablesWorkSideBySide) {
  driver a(module_path[0]), b(module_path[1]);
  ASSERT_TRUE(a.loaded() && b.loaded());
  const mesa_allocator *table_a = a.table_create(), *table_b = b.table_create();
  ASSERT_NE(table_a, nullptr);
  ASSERT_NE(table_b, nullptr);
  void *p = table_a->alloc_fn(table_a->user_data, 64, 16, MESA_ALLOC_SCOPE_OBJECT);
  void *q = table_b->alloc_fn(table_b->user_data, 64, 16, MESA_ALLOC_SCOPE_OBJECT);
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(p, q);
  table_a->free_fn(table_a->user_data, p);
  table_b->free_fn(table_b->user_data, q);
  a.table_destroy(table_a);
  b.table_destroy(table_b);
}

// Runs both drivers under MESA_ALLOC_DEBUG=`debug` and exits.
void allocate_in_both_and_exit(const std::string &debug) {
  setenv("MESA_ALLOC_DEBUG", debug.c_str(), 1);
  driver a(module_path[0]);
  driver b(module_path[1]);
  a.free(a.malloc(24));
  b.free(b.malloc(40));
  std::exit(0);
}

// Under stats each copy reports at exit (B's handler, registered last, first).
TEST(TwoCopiesDeathTest, EachCopyNamesItsLibraryInItsExitReports) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: MESA_ALLOC_DEBUG is read
  EXPECT_EXIT(allocate_in_both_and_exit("stats"), testing::ExitedWithCode(0),
              "MESA_ALLOC_DEBUG reports of the mesa_alloc in [^\n]*two_copies_driver_b[^\n]*\n"
              "mesa_alloc: statistics of the default allocator[^\n]*\n[^\n]*\n"
              "default +0 +40 +40 .*"
              "MESA_ALLOC_DEBUG reports of the mesa_alloc in [^\n]*two_copies_driver_a[^\n]*\n"
              "mesa_alloc: statistics of the default allocator[^\n]*\n[^\n]*\n"
              "default +0 +24 +24 ");
}

// Under limit=32 driver B's 40-byte block is refused: its one refusal line follows the line
// naming B's library, so that two drivers' budgets are told apart (it came unnamed).
TEST(TwoCopiesDeathTest, ALimitsRefusalNamesTheLibraryOfItsCopy) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(allocate_in_both_and_exit("limit=32"), testing::ExitedWithCode(0),
              "MESA_ALLOC_DEBUG reports of the mesa_alloc in [^\n]*two_copies_driver_b[^\n]*\n"
              "mesa_alloc: MESA_ALLOC_DEBUG: limit=32 refused an allocation of 40 bytes");
}

// Both drivers under MESA_ALLOC_DEBUG=trace=FILE: A writes FILE, B finds it held and writes a
// file of its own, says so, and says which library's copy it is.
TEST(TwoCopiesDeathTest, TheSecondCopysTraceSaysWhichLibraryWritesIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string trace_path = testing::TempDir() + "/two_copies.trace";
  EXPECT_EXIT(allocate_in_both_and_exit("trace=" + trace_path), testing::ExitedWithCode(0),
              "trace file [^\n]*two_copies.trace is being written by another writer [^\n]*; "
              "this one writes [^\n]*two_copies.trace.[0-9]+\n"
              "mesa_alloc: MESA_ALLOC_DEBUG reports of the mesa_alloc in "
              "[^\n]*two_copies_driver_b[^\n]*\n");
  glob_t own;
  if (glob((trace_path + "*").c_str(), 0, nullptr, &own) == 0) {
    for (std::size_t i = 0; i < own.gl_pathc; ++i) std::remove(own.gl_pathv[i]);
    globfree(&own);
  }
}

// A double free in driver B under MESA_ALLOC_DEBUG=cookie: B's debug layer aborts, and its report
// says which library's copy made it, as the exit reports do.
void double_free_in_b() {
  setenv("MESA_ALLOC_DEBUG", "cookie", 1);
  driver a(module_path[0]);
  driver b(module_path[1]);
  a.free(a.malloc(24));
  void *p = b.malloc(40);
  b.free(p);
  b.free(p);
}

TEST(TwoCopiesDeathTest, AnErrorReportNamesTheLibraryOfItsCopy) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(double_free_in_b(),
               "MESA_ALLOC_DEBUG reports of the mesa_alloc in [^\n]*two_copies_driver_b[^\n]*\n"
               "mesa_alloc: double free at 0x[0-9a-f]+ size 40 allocation #[0-9]+");
}

// The dynamic symbols of `file` with STB_GNU_UNIQUE binding whose names contain `part` (all of
// them if null); an error
// string instead if the file cannot be read as ELF.
std::vector<std::string> unique_symbols(const std::string &file, const char *part,
                                        std::string *error) {
  std::ifstream in(file, std::ios::binary);
  const std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (image.size() < sizeof(ElfW(Ehdr)) || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
    *error = file + ": not an ELF file";
    return {};
  }
  ElfW(Ehdr) header;
  std::memcpy(&header, image.data(), sizeof header);
  auto section = [&](std::size_t i) {
    ElfW(Shdr) s;
    std::memcpy(&s, image.data() + header.e_shoff + i * header.e_shentsize, sizeof s);
    return s;
  };
  if (header.e_shoff + std::size_t{header.e_shnum} * header.e_shentsize > image.size()) {
    *error = file + ": section headers beyond the end of the file";
    return {};
  }
  std::vector<std::string> found;
  for (std::size_t i = 0; i < header.e_shnum; ++i) {
    const ElfW(Shdr) dynsym = section(i);
    if (dynsym.sh_type != SHT_DYNSYM) continue;
    const ElfW(Shdr) strtab = section(dynsym.sh_link);
    for (std::size_t k = 0; k < dynsym.sh_size / sizeof(ElfW(Sym)); ++k) {
      ElfW(Sym) sym;
      std::memcpy(&sym, image.data() + dynsym.sh_offset + k * sizeof sym, sizeof sym);
      const std::string name(image.data() + strtab.sh_offset + sym.st_name);
      if (ELF64_ST_BIND(sym.st_info) == STB_GNU_UNIQUE &&
          (part == nullptr || name.find(part) != std::string::npos)) {
        found.push_back(name);
      }
    }
  }
  return found;
}

TEST(TwoCopies, NoSymbolOfOursIsMergedAcrossLibraries) {
  std::vector<std::string> files = {module_path[0], module_path[1]};
  files.insert(files.end(), library_paths.begin(), library_paths.end());
  for (const std::string &file : files) {
    std::string error;
    // Any name with a mesa:: part: _ZN4mesa..., and a function's static _ZZN4mesa... with its
    // guard _ZGVZN4mesa...
    const std::vector<std::string> unique = unique_symbols(file, "4mesa", &error);
    EXPECT_EQ(error, "");
    for (const std::string &name : unique) ADD_FAILURE() << file << ": STB_GNU_UNIQUE " << name;
  }
}

// The Vulkan loader dlcloses a driver at vkDestroyInstance: a driver that used a tracking table
// on this thread must really go. A thread_local with a destructor (the tracker's shard release)
// kept it mapped for the thread's life, with its statics reused at the next dlopen. glibc never
// unloads a library that defines an STB_GNU_UNIQUE symbol, and an unoptimized build defines one
// of the standard library's (std::piecewise_construct): then there is nothing to test.
TEST(TwoCopies, ADriverThatTrackedIsUnloadedByDlclose) {
  std::string error;
  const std::vector<std::string> unique = unique_symbols(module_path[0], nullptr, &error);
  ASSERT_EQ(error, "");
  if (!unique.empty()) GTEST_SKIP() << module_path[0] << " defines STB_GNU_UNIQUE " << unique[0];
  {
    driver a(module_path[0]);
    ASSERT_TRUE(a.loaded());
    EXPECT_EQ(a.tracking_roundtrip(), 0);
  }
  void *still = dlopen(module_path[0].c_str(), RTLD_NOW | RTLD_NOLOAD);
  EXPECT_EQ(still, nullptr) << module_path[0] << " is still loaded after dlclose";
  if (still != nullptr) dlclose(still);
}

}  // namespace

int main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DRIVER_A.so DRIVER_B.so [LIBRARY.so ...]\n", argv[0]);
    return 2;
  }
  library_paths.assign(argv + 3, argv + argc);
  // dlopen searches the library path for a name without a slash.
  for (int i = 0; i < 2; ++i) {
    module_path[i] =
        std::strchr(argv[i + 1], '/') != nullptr ? argv[i + 1] : std::string("./") + argv[i + 1];
  }
  return RUN_ALL_TESTS();
}
