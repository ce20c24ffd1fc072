#include "mesa_alloc/arena_resource.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "mesa_alloc/internal/align_up.h"
#include "mesa_alloc/internal/allocate_or_smaller.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/request_limit.h"

namespace mesa {

struct arena_resource::block {
  block *next;
  std::size_t size;  // bytes taken from upstream, header included
  std::size_t alignment;
};

namespace {

// Bytes at the start of every upstream block (the block header, rounded up to keep the data
// aligned to max_align_t).
constexpr std::size_t kHeader = 32;
constexpr std::size_t kBlockAlignment = alignof(std::max_align_t);

// A number for each arena built in this copy of the library: one relaxed increment per arena.
std::uint64_t next_lifetime() noexcept {
  static std::atomic<std::uint64_t> lifetimes{0};
  return lifetimes.fetch_add(1, std::memory_order_relaxed) + 1;
}

[[noreturn]] void invalid_mark() noexcept {
  std::fputs(
      "mesa_alloc: invalid arena mark (stale, already rewound past, or from another arena)\n",
      stderr);
  std::abort();
}

// A shared block over any block's limit: the options asked for it (a first block that large, or
// a large_threshold that leaves a huge request to a shared block). bad_alloc, after a line in
// debug builds naming them.
[[noreturn, gnu::cold]] void refuse_block_size(std::size_t size, const arena_options &options) {
#ifndef NDEBUG
  std::fprintf(stderr,
               "mesa_alloc: arena_resource::allocate: the next block would be %zu bytes, over the "
               "largest block (%zu bytes): see its arena_options (initial_block_size %zu, "
               "max_block_size %zu, large_threshold %zu)\n",
               size, internal::kMaxRequestBytes, options.initial_block_size, options.max_block_size,
               options.large_threshold);
#else
  (void)size;
  (void)options;
#endif
  throw std::bad_alloc();
}

}  // namespace

arena_resource::arena_resource(std::pmr::memory_resource *upstream,
                               const arena_options &options) noexcept
    : next_block_size_(options.initial_block_size),
      upstream_(upstream),
      options_(options),
      lifetime_(next_lifetime()) {
  static_assert(sizeof(block) <= kHeader, "block header must fit kHeader");
  // A fixed buffer that must not grow has std::pmr::null_memory_resource() upstream.
  if (upstream == nullptr) internal::report_null_resource("arena_resource", "upstream resource");
  if (options_.initial_block_size == 0) {
    options_.initial_block_size = arena_options().initial_block_size;
    next_block_size_ = options_.initial_block_size;
  }
  if (options_.max_block_size < options_.initial_block_size) {
    options_.max_block_size = options_.initial_block_size;
  }
  if (options_.large_threshold == 0) options_.large_threshold = options_.max_block_size / 4;
  cur_ = initial_begin();
  end_ = initial_end();
}

std::uintptr_t arena_resource::initial_begin() const noexcept {
  return reinterpret_cast<std::uintptr_t>(options_.initial_buffer);
}

std::uintptr_t arena_resource::initial_end() const noexcept {
  return options_.initial_buffer == nullptr ? 0 : initial_begin() + options_.initial_buffer_size;
}

void arena_resource::refuse_alignment(std::size_t alignment) {
  internal::refuse_request("arena_resource::allocate", alignment);
}

void *arena_resource::allocate_slow(std::size_t bytes, std::size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) refuse_alignment(alignment);
  if (bytes > SIZE_MAX / 2 || alignment > SIZE_MAX / 4) throw std::bad_alloc();
  const std::size_t need = bytes + alignment - 1;
  if (need > options_.large_threshold) return allocate_large(bytes, alignment);

  block *fresh = nullptr;
  for (block **link = &spare_; *link != nullptr; link = &(*link)->next) {
    if ((*link)->size - kHeader >= need) {
      fresh = *link;
      *link = fresh->next;
      spare_bytes_ -= fresh->size;
      break;
    }
  }
  if (fresh == nullptr) {
    std::size_t size = next_block_size_;
    if (size < need + kHeader) size = internal::align_up(need + kHeader, kBlockAlignment);
    // The options may ask for more than any block can have (and libstdc++'s aligned new
    // would wrap such a size round to a tiny block).
    if (size > internal::kMaxRequestBytes) refuse_block_size(size, options_);
    // Under a budget the next block may not fit where one holding this request does: a smaller
    // block then, and the next one does not grow.
    const std::size_t wanted = size;
    fresh = static_cast<block *>(
        internal::allocate_or_smaller(upstream_, &size, need + kHeader, kBlockAlignment));
    fresh->size = size;
    fresh->alignment = kBlockAlignment;
    ++block_count_;
    if (size == wanted && next_block_size_ < options_.max_block_size) {
      next_block_size_ = next_block_size_ * 2 < options_.max_block_size ? next_block_size_ * 2
                                                                        : options_.max_block_size;
    }
  }
  start_block(fresh);
  const std::uintptr_t aligned = (cur_ + alignment - 1) & ~(alignment - 1);
  cur_ = aligned + bytes;
  bytes_allocated_ += bytes;
  return reinterpret_cast<void *>(aligned);
}

void *arena_resource::allocate_large(std::size_t bytes, std::size_t alignment) {
  const std::size_t block_alignment = alignment > kBlockAlignment ? alignment : kBlockAlignment;
  const std::size_t offset = internal::align_up(kHeader, block_alignment);
  if (offset > internal::kMaxRequestBytes || bytes > internal::kMaxRequestBytes - offset)
    throw std::bad_alloc();
  const std::size_t size = offset + bytes;
  auto *b = static_cast<block *>(upstream_->allocate(size, block_alignment));
  b->size = size;
  b->alignment = block_alignment;
  b->next = large_;
  large_ = b;
  ++block_count_;
  reserved_bytes_ += size;
  bytes_allocated_ += bytes;
  return reinterpret_cast<unsigned char *>(b) + offset;
}

void arena_resource::start_block(block *b) noexcept {
  b->next = blocks_;
  blocks_ = b;
  reserved_bytes_ += b->size;
  cur_ = reinterpret_cast<std::uintptr_t>(b) + kHeader;
  end_ = reinterpret_cast<std::uintptr_t>(b) + b->size;
}

void arena_resource::free_blocks(block *list) noexcept {
  while (list != nullptr) {
    block *next = list->next;
    upstream_->deallocate(list, list->size, list->alignment);
    list = next;
  }
}

void arena_resource::release() noexcept {
  free_blocks(blocks_);
  free_blocks(large_);
  free_blocks(spare_);
  blocks_ = large_ = spare_ = nullptr;
  reserved_bytes_ = spare_bytes_ = block_count_ = bytes_allocated_ = 0;
  next_block_size_ = options_.initial_block_size;
  cur_ = initial_begin();
  end_ = initial_end();
  floor_count_ = 0;
  released_serial_ = serial_;
}

arena_mark arena_resource::mark() noexcept {
  arena_mark m;
  m.arena_ = this;
  m.lifetime_ = lifetime_;
  m.serial_ = ++serial_;
  m.block_ = blocks_;
  m.large_ = large_;
  m.cur_ = cur_;
  m.bytes_allocated_ = bytes_allocated_;
  return m;
}

bool arena_resource::mark_is_valid(const arena_mark &m) const noexcept {
  if (m.arena_ != this || m.lifetime_ != lifetime_ || m.serial_ <= released_serial_ ||
      m.serial_ > serial_)
    return false;
  // Below the mark now: a rewind since went below it (exact even when low points were merged).
  if (m.bytes_allocated_ > bytes_allocated_) return false;
  for (int i = 0; i < floor_count_; ++i) {
    if (floors_[i].serial >= m.serial_) return floors_[i].bytes_allocated >= m.bytes_allocated_;
  }
  return true;
}

void arena_resource::remember_low_point(std::size_t bytes_allocated) noexcept {
  while (floor_count_ > 0 && floors_[floor_count_ - 1].bytes_allocated >= bytes_allocated) {
    --floor_count_;
  }
  if (floor_count_ == kTrackedRewinds) {
    // Merge the two oldest: the second stands for marks up to the first's serial too. Checking
    // those against a higher point can let a stale mark through, never refuse a valid one.
    floors_[1].serial = floors_[0].serial;
    std::memmove(floors_, floors_ + 1, sizeof(low_point) * (kTrackedRewinds - 1));
    --floor_count_;
  }
  floors_[floor_count_++] = low_point{serial_, bytes_allocated};
}

void arena_resource::rewind(const arena_mark &m) noexcept {
  if (!mark_is_valid(m)) invalid_mark();
  // Also validate the position before touching anything: the mark's blocks must still be on
  // our lists and its position must lie in its block at or before the current one.
  block *target = static_cast<block *>(m.block_);
  block *b = blocks_;
  while (b != target && b != nullptr) b = b->next;
  if (b != target) invalid_mark();
  const std::uintptr_t begin =
      target == nullptr ? initial_begin() : reinterpret_cast<std::uintptr_t>(target) + kHeader;
  const std::uintptr_t end =
      target == nullptr ? initial_end() : reinterpret_cast<std::uintptr_t>(target) + target->size;
  if (m.cur_ < begin || m.cur_ > end || (target == blocks_ && m.cur_ > cur_)) invalid_mark();
  block *large = large_;
  while (large != m.large_ && large != nullptr) large = large->next;
  if (large != m.large_) invalid_mark();

  while (blocks_ != target) {
    block *next = blocks_->next;
    reserved_bytes_ -= blocks_->size;
    spare_bytes_ += blocks_->size;
    blocks_->next = spare_;
    spare_ = blocks_;
    blocks_ = next;
  }
  while (large_ != m.large_) {
    block *next = large_->next;
    reserved_bytes_ -= large_->size;
    --block_count_;
    upstream_->deallocate(large_, large_->size, large_->alignment);
    large_ = next;
  }
  cur_ = m.cur_;
  end_ = end;
  bytes_allocated_ = m.bytes_allocated_;
  // A rewind to the newest mark tells nothing new: a mark taken before it at a higher point was
  // already stale (the arena came down to the newest mark's point since), and none was taken
  // after it. Not recording it keeps the common loop (mark, work, rewind, keep a little) from
  // filling the list.
  if (m.serial_ != serial_) remember_low_point(bytes_allocated_);
}

arena_stats arena_resource::stats() const noexcept {
  arena_stats s;
  s.bytes_allocated = bytes_allocated_;
  s.bytes_reserved = reserved_bytes_ + spare_bytes_;
  s.blocks = block_count_;
  const std::size_t consumed =
      reserved_bytes_ + (options_.initial_buffer == nullptr ? 0 : options_.initial_buffer_size);
  s.wasted_bytes = consumed - bytes_allocated_ - (end_ - cur_);
  return s;
}

}  // namespace mesa
