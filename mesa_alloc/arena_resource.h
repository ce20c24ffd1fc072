// arena_resource — bump allocation in blocks taken from an upstream resource.
//
// What it is for: objects that die together (a shader's IR, a pass's scratch data, a command
// buffer's temporaries). Allocation is a pointer bump; nothing is freed one by one: release()
// returns every block upstream at once, and mark()/rewind() pop back to an earlier point.
//
// What it costs: allocate() called on an arena_resource (not through a memory_resource *) is
// inline and non-virtual: an align, a compare and an add. Through std::pmr it is one virtual
// call more. No per-block header. Blocks from upstream grow geometrically (initial_block_size,
// doubling, capped at max_block_size); a request that does not fit the current block and needs
// more than large_threshold gets its own upstream block (one that fits is bump-allocated like
// any other). The tail of a block too small for the next request is wasted (see stats()).
// deallocate() of one block is a no-op: memory comes back only on rewind(), release() or
// destruction.
//
// Example:
//   mesa::arena_resource arena(upstream);            // or (upstream, options)
//   std::pmr::vector<int> v(&arena);                   // through the pmr interface
//   auto *n = static_cast<node *>(arena.allocate(sizeof(node), alignof(node)));  // inline
//   *n = node{};
//   mesa::arena_mark m = arena.mark();
//   ... scratch allocations ...
//   arena.rewind(m);                                   // back to the state at mark()
//
// Not thread-safe: use one arena per object or per thread. Marks nest to any depth: rewinding
// to a mark (any number of times) keeps it valid and invalidates every mark taken after it at a
// later point; release() invalidates every mark. Rewinding to such a stale mark, or to one from
// another arena (one destroyed since included, even if this one sits at its address), prints
// "mesa_alloc: invalid arena mark" on stderr and aborts. A valid mark is
// never refused. The check is exact while the arena remembers the low points of the rewinds
// made since the mark (kTrackedRewinds of them: a rewind to a lower point replaces those above
// it, and a rewind to the newest mark adds none, so only rewinds to older marks at ever higher
// points add up); past that the oldest are merged, and a stale mark can get through to the
// last check, against the arena's blocks.
#ifndef MESA_ALLOC_ARENA_RESOURCE_H_
#define MESA_ALLOC_ARENA_RESOURCE_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>

namespace mesa {

struct arena_options {
  // Size of the first block taken from upstream; later blocks double up to max_block_size.
  // 0: the default, 4096.
  std::size_t initial_block_size = 4096;
  std::size_t max_block_size = 1 << 20;
  // A request that does not fit the current block and needs more than this (size + alignment
  // - 1) gets its own upstream block instead of a new shared one. 0: max_block_size / 4.
  std::size_t large_threshold = 0;
  // Optional memory used before anything is asked from upstream (e.g. a stack buffer). It is
  // never freed by the arena and must outlive it.
  void *initial_buffer = nullptr;
  std::size_t initial_buffer_size = 0;
};

struct arena_stats {
  std::size_t bytes_allocated = 0;  // bytes handed out and not rewound/released
  std::size_t bytes_reserved = 0;   // bytes held from upstream (blocks, large blocks, spares)
  std::size_t blocks = 0;           // upstream blocks held
  std::size_t wasted_bytes = 0;     // alignment padding, block headers and abandoned tails
};

// A point to rewind to; obtained from arena_resource::mark().
class arena_mark {
 private:
  friend class arena_resource;
  const void *arena_ = nullptr;
  std::uint64_t lifetime_ = 0;  // the arena's, unique in the process (see arena_resource)
  std::uint64_t serial_ = 0;    // the arena's count of mark() calls when this one was taken
  void *block_ = nullptr;
  void *large_ = nullptr;
  std::uintptr_t cur_ = 0;
  std::size_t bytes_allocated_ = 0;
};

class arena_resource final : public std::pmr::memory_resource {
 public:
  explicit arena_resource(std::pmr::memory_resource *upstream,
                          const arena_options &options = arena_options()) noexcept;
  arena_resource(const arena_resource &) = delete;
  arena_resource &operator=(const arena_resource &) = delete;
  ~arena_resource() override { release(); }

  // The non-virtual fast path (hides memory_resource::allocate; same contract). Throws
  // std::bad_alloc when upstream fails, for an alignment of 0 (a block is never misplaced), and
  // when the options ask for a block over PTRDIFF_MAX bytes (a line in debug builds says so);
  // other alignments must be powers of two (checked through the pmr interface, and whenever a
  // request takes the slow path). The arena stays usable.
  [[nodiscard]] void *allocate(std::size_t bytes,
                               std::size_t alignment = alignof(std::max_align_t)) {
    bytes += (bytes == 0);
    // aligned < cur_ only for alignment 0 (it clears every bit): the slow path refuses it.
    const std::uintptr_t aligned = (cur_ + alignment - 1) & ~(alignment - 1);
    if (aligned >= cur_ && aligned <= end_ && bytes <= end_ - aligned) {
      cur_ = aligned + bytes;
      bytes_allocated_ += bytes;
      return reinterpret_cast<void *>(aligned);
    }
    return allocate_slow(bytes, alignment);
  }

  // A no-op: arena memory comes back with rewind(), release() or the destructor.
  void deallocate(void *, std::size_t, std::size_t = alignof(std::max_align_t)) noexcept {}

  // Returns every upstream block (the initial buffer is kept and reused).
  void release() noexcept;

  // Marks the current point (no allocation, no bookkeeping: the mark carries its position).
  arena_mark mark() noexcept;
  // Frees everything allocated since `m`. Blocks taken after the mark are kept for reuse
  // (large blocks go back upstream).
  void rewind(const arena_mark &m) noexcept;

  // How many rising rewind points are remembered exactly (see the top of this header).
  static constexpr int kTrackedRewinds = 16;

  arena_stats stats() const noexcept;
  std::pmr::memory_resource *upstream_resource() const noexcept { return upstream_; }

 private:
  struct block;

  [[gnu::noinline]] void *allocate_slow(std::size_t bytes, std::size_t alignment);
  void *allocate_large(std::size_t bytes, std::size_t alignment);
  void start_block(block *b) noexcept;
  void free_blocks(block *list) noexcept;
  std::uintptr_t initial_begin() const noexcept;
  std::uintptr_t initial_end() const noexcept;

  // Through std::pmr a bad alignment is checked (std::bad_alloc); the direct call assumes it.
  void *do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) refuse_alignment(alignment);
    return allocate(bytes, alignment);
  }
  // std::bad_alloc, after a line naming the arena in debug builds.
  [[noreturn, gnu::cold]] static void refuse_alignment(std::size_t alignment);
  void do_deallocate(void *, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource &other) const noexcept override {
    return this == &other;
  }

  std::uintptr_t cur_ = 0;
  std::uintptr_t end_ = 0;
  std::size_t bytes_allocated_ = 0;
  block *blocks_ = nullptr;         // normal blocks, newest (current) first
  block *large_ = nullptr;          // large blocks, newest first
  block *spare_ = nullptr;          // blocks freed by rewind, reused before asking upstream
  std::size_t reserved_bytes_ = 0;  // upstream bytes held, spares excluded
  std::size_t spare_bytes_ = 0;
  std::size_t block_count_ = 0;  // upstream blocks held, spares included
  std::size_t next_block_size_;
  std::pmr::memory_resource *upstream_;
  arena_options options_;

  // A mark (serial s, at bytes_allocated b) is valid iff no rewind since it went below b and
  // no release() came after it. The rewinds are kept as their low points: a rewind made when
  // serial_ was S down to b remembers {S, b} and forgets the remembered points at or above b
  // (the new one is later and lower). Serials and bytes then both rise along floors_, and a
  // mark is valid iff the first low point with serial >= s is not below b.
  struct low_point {
    std::uint64_t serial;
    std::size_t bytes_allocated;
  };
  bool mark_is_valid(const arena_mark &m) const noexcept;
  void remember_low_point(std::size_t bytes_allocated) noexcept;
  low_point floors_[kTrackedRewinds];
  int floor_count_ = 0;
  // Numbers this arena's life among all arenas' (from 1): a mark of an arena destroyed before
  // this one was built at the same address carries another.
  const std::uint64_t lifetime_;
  std::uint64_t serial_ = 0;           // mark() calls so far: a mark's serial
  std::uint64_t released_serial_ = 0;  // serial_ at the last release(): older marks are stale
};

}  // namespace mesa

#endif  // MESA_ALLOC_ARENA_RESOURCE_H_
