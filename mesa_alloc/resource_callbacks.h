// resource_callbacks — a C callback table over any std::pmr::memory_resource.
//
// What it is for: the bridge from C++ resources back to C: hand an arena, a tracking or debug
// resource to C code (mesa_alloc2, u_memory.h macros) or to anything taking a mesa_allocator.
//
// What it costs: C frees are unsized, so each block carries a small header just before it
// recording its size, its alignment and the table's tag: max(16, alignment) bytes per block (16
// bytes for ordinary requests). A free or realloc of a block whose header lacks the tag (from
// another table, never allocated, or freed already) prints one line and leaves the block alone.
// The check reads the header, so it needs it mapped and, for a double free, not reused: over a
// resource that hands freed memory on (the heap), the second free reads freed memory (ASan
// reports a use after free) and is refused only while nothing has rewritten the tag; a large
// block the upstream unmapped at its first free faults at the second, as glibc's free does.
// debug_resource in front sees every double free (over a debug_resource, hand its own table()
// instead, as vk_callbacks does). A block the resource returns misaligned is
// refused with one line (NULL).
// realloc allocates a new block, copies min(old, new) bytes and frees the old one.
//
// Example:
//   mesa::arena_resource arena(std::pmr::get_default_resource());
//   mesa::resource_callbacks callbacks(&arena);
//   char *s = static_cast<char *>(mesa_alloc2(nullptr, callbacks.table(), 32, 8,
//                                             MESA_ALLOC_SCOPE_COMMAND));
//   mesa_free2(nullptr, callbacks.table(), s);  // or left to the arena's release,
//   arena.release();                             // after which the table
//   callbacks.blocks_released();                 // refuses s (see blocks_released)
//
// The object must outlive every block allocated through its table. The table is thread-safe
// when the resource is. Exceptions from the resource become NULL.
#ifndef MESA_ALLOC_RESOURCE_CALLBACKS_H_
#define MESA_ALLOC_RESOURCE_CALLBACKS_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "mesa_alloc/mesa_alloc.h"

namespace mesa {

class resource_callbacks {
 public:
  // Bytes of header before every block of `alignment` (documented cost above).
  static constexpr std::size_t header_bytes(std::size_t alignment) noexcept {
    return alignment > kHeaderAlignment ? alignment : kHeaderAlignment;
  }

  // A null `resource` means std::pmr::get_default_resource() at construction.
  explicit resource_callbacks(std::pmr::memory_resource *resource) noexcept;
  resource_callbacks(const resource_callbacks &) = delete;
  resource_callbacks &operator=(const resource_callbacks &) = delete;

  const mesa_allocator *table() const noexcept { return &table_; }
  std::pmr::memory_resource *resource() const noexcept { return resource_; }

  // The object whose table() this is; NULL for NULL or any other kind of table.
  static const resource_callbacks *from_table(const mesa_allocator *table) noexcept;
  // What a derived class said it is (see the protected constructor); NULL if nothing.
  const void *kind() const noexcept { return kind_; }

  // Call after the resource freed every block at once (arena_resource::release(), a pool's
  // release()): the table takes a new tag, so a free or realloc of a block from before is
  // refused ("not a live block of this table") instead of taken as live, while its address has
  // not been handed out again (over the heap the first blocks after a release usually get the
  // old addresses: a stale pointer equal to one is taken for the new block; debug_resource in
  // front sees it). Not thread-safe: call it while no other thread uses the table, as the
  // release itself requires. mesa_arena_release does it.
  void blocks_released() noexcept { tag_ += 2; }  // still odd, as header_tag makes it

 protected:
  // For classes that hand out the table and must recognise it again (the C create/destroy
  // functions): `kind` is an address unique to the derived class, and `name` what the table's
  // lines call it ("mesa_arena": `invalid free at 0x… through a mesa_arena table`; a string
  // that outlives the table). The public constructor's tables are "resource_callbacks".
  resource_callbacks(std::pmr::memory_resource *resource, const void *kind,
                     const char *name) noexcept;
  // For those over a parent table (mesa_fault_create): the table's internal-allocation
  // notifications (NULL by default: none). Set before the table is handed out.
  void set_notifications(decltype(mesa_allocator::internal_alloc_fn) internal_alloc,
                         decltype(mesa_allocator::internal_free_fn) internal_free) noexcept {
    table_.internal_alloc_fn = internal_alloc;
    table_.internal_free_fn = internal_free;
  }

 private:
  static constexpr std::size_t kHeaderAlignment = 16;

  static void *alloc(void *user_data, std::size_t size, std::size_t alignment,
                     mesa_alloc_scope scope);
  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t alignment,
                       mesa_alloc_scope scope);
  static void free(void *user_data, void *ptr);

  // One line for a bad alignment given to alloc or realloc (`call`), naming the table.
  [[gnu::cold]] void report_invalid_alignment(const char *call, std::size_t alignment) const;

  std::pmr::memory_resource *resource_;
  const void *kind_ = nullptr;
  const char *name_;
  std::uint32_t tag_;  // in the header of every live block of this table
  mesa_allocator table_;
};

}  // namespace mesa

#endif  // MESA_ALLOC_RESOURCE_CALLBACKS_H_
