// The C functions of fast_resources.h: the arena and pools are built with internal/c_handle.h
// on top of the parent table; the slabs have their own header-less fixed-size table.
#include "mesa_alloc/fast_resources.h"

#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "mesa_alloc/arena_resource.h"
#include "mesa_alloc/callback_resource.h"
#include "mesa_alloc/internal/api_caller.h"
#include "mesa_alloc/internal/c_handle.h"
#include "mesa_alloc/internal/checked_alloc.h"
#include "mesa_alloc/internal/diagnostics.h"
#include "mesa_alloc/internal/forwarded_notifications.h"
#include "mesa_alloc/internal/free_list.h"
#include "mesa_alloc/internal/slab_geometry.h"
#include "mesa_alloc/pool_resource.h"
#include "mesa_alloc/slab_parent.h"
#include "mesa_alloc/slab_resource.h"
#include "mesa_alloc/synchronized_pool_resource.h"

using mesa::internal::c_handle_create;
using mesa::internal::c_handle_destroy;
using mesa::internal::c_handle_resource;

// A C-created slab_parent: its upstream is the parent table.
struct mesa_slab_parent {
  mesa_slab_parent(const mesa_allocator *parent_table, std::size_t size)
      : parent(parent_table), upstream(parent_table), slab(&upstream, size), object_size(size) {}

  const mesa_allocator *parent;
  mesa::callback_resource upstream;
  mesa::slab_parent slab;
  std::size_t object_size;  // as asked for: the C tables serve no more (the slots may be larger)
};

namespace {

// The header-less fixed-size table over a slab (every block is one slot, so C frees need no
// size). Derived has a member `slab` with allocate_object()/deallocate_object().
template <class Derived>
struct c_fixed_table {
  c_fixed_table(const mesa_allocator *parent_table, std::size_t size, std::size_t align)
      : table{this, &alloc, &realloc, &free, nullptr, nullptr},
        parent(parent_table),
        object_size(size),
        alignment(align) {}

  static Derived *self(void *user_data) {
    return static_cast<Derived *>(static_cast<c_fixed_table *>(user_data));
  }
  static const mesa_allocator *parent_of(void *user_data) noexcept {
    return static_cast<c_fixed_table *>(user_data)->parent;
  }
  // The parent's internal-allocation notifications, forwarded (`where`: the create function).
  void forward_notifications(const char *where) noexcept {
    const mesa::internal::notifications n =
        mesa::internal::forwarded_notifications<&parent_of>(parent, where);
    table.internal_alloc_fn = n.internal_alloc;
    table.internal_free_fn = n.internal_free;
  }
  static void *alloc(void *user_data, std::size_t size, std::size_t align, mesa_alloc_scope) {
    if (!mesa_alloc_alignment_valid(align)) {
      mesa::internal::report_invalid_alignment(Derived::kAlloc, align);
      return nullptr;
    }
    return allocate(self(user_data), size, align);
  }
  // A bad alignment is refused first, as every table does: the block is kept, also by a
  // realloc to 0 bytes (a free), so a caller that frees it after the NULL frees it once.
  static void *realloc(void *user_data, void *ptr, std::size_t size, std::size_t align,
                       mesa_alloc_scope) {
    if (!mesa_alloc_alignment_valid(align)) {
      mesa::internal::report_invalid_alignment(Derived::kRealloc, align);
      return nullptr;
    }
    Derived *d = self(user_data);
    if (ptr == nullptr) return allocate(d, size, align);
    if (size == 0) {
      free(user_data, ptr);
      return nullptr;
    }
    if (const char *why = d->not_ours(ptr)) {  // kept, it would be freed into the wrong slab
      mesa::internal::report_refused_free("invalid realloc", ptr, Derived::kWhere, why);
      return nullptr;
    }
    if (d->slab.is_freed(ptr)) {  // kept in place, it would be on the free list and handed out
      mesa::internal::report_freed_block("realloc of a freed block", ptr, d->object_size,
                                         Derived::kWhere);
      return nullptr;
    }
    return size <= d->object_size && align <= d->alignment ? ptr : nullptr;
  }
  static void free(void *user_data, void *ptr) {
    if (ptr == nullptr) return;
    Derived *d = self(user_data);
    if (const char *why = d->not_ours(ptr)) {  // pushed, it would be handed out over live data
      mesa::internal::report_refused_free("invalid free", ptr, Derived::kWhere, why);
      return;
    }
    d->slab.deallocate_object(ptr);
  }
  // alloc and realloc of NULL, past the alignment check: one slot, or NULL for a request larger
  // than the object size asked for at create (even if the slot, rounded up, would hold it: a
  // slab made for one type refuses a wrong size) or more aligned than the slots, or when
  // upstream fails.
  static void *allocate(Derived *d, std::size_t size, std::size_t align) noexcept {
    if (size > d->object_size || align > d->alignment) return nullptr;
    try {
      return d->slab.allocate_object();
    } catch (...) {
      return nullptr;
    }
  }

  mesa_allocator table;
  const mesa_allocator *parent;
  std::size_t object_size;
  std::size_t alignment;
};

struct c_slab_resource : c_fixed_table<c_slab_resource> {
  c_slab_resource(const mesa_allocator *parent_table, std::size_t size)
      : c_fixed_table(parent_table, size, 0), upstream(parent_table), slab(&upstream, size) {
    alignment = slab.alignment();
  }
  static constexpr const char *kWhere = "in mesa::slab_resource";
  static constexpr const char *kAlloc = "mesa_slab alloc";
  static constexpr const char *kRealloc = "mesa_slab realloc";
  // Its pages are not aligned to their size, so a block of another slab cannot be told from
  // one of its own (debug_resource in front can): every pointer is taken as its own.
  static const char *not_ours(const void *) noexcept { return nullptr; }
  mesa::callback_resource upstream;
  mesa::slab_resource slab;
};

struct c_slab_child : c_fixed_table<c_slab_child> {
  c_slab_child(const mesa_allocator *parent_table, mesa_slab_parent *p)
      : c_fixed_table(parent_table, p->object_size, p->slab.alignment()), slab(&p->slab) {}
  static constexpr const char *kWhere = "in mesa::slab_child";
  static constexpr const char *kAlloc = "mesa_slab_child alloc";
  static constexpr const char *kRealloc = "mesa_slab_child realloc";
  // Checked on every free too: the child's own blocks' inline push checks nothing.
  const char *not_ours(const void *p) const noexcept { return slab.parent()->not_a_block(p); }
  mesa::slab_child slab;
};

// The T behind a table made by create_in<T>; NULL for NULL or a table of another kind (each T
// has its own alloc function).
template <class T>
T *from_table(const mesa_allocator *table) {
  if (table == nullptr || table->alloc_fn != &c_fixed_table<T>::alloc) return nullptr;
  return c_fixed_table<T>::self(table->user_data);
}

// Builds T in one block from `parent` (already resolved); NULL if that or T's constructor fails.
// A constructor refusing its arguments (a slab geometry that does not fit) says why, naming
// `where`.
template <class T, class... Args>
T *create_in(const char *where, const mesa_allocator *parent, Args &&...args) noexcept {
  void *storage =
      mesa::internal::checked_alloc(parent, sizeof(T), alignof(T), MESA_ALLOC_SCOPE_OBJECT, where);
  if (storage == nullptr) return nullptr;
  try {
    return new (storage) T(std::forward<Args>(args)...);
  } catch (const std::invalid_argument &e) {
    const char *why = e.what();
    if (std::strncmp(why, "mesa_alloc: ", 12) == 0) why += 12;
    std::fprintf(stderr, "mesa_alloc: %s: %s\n", where, why);
  } catch (...) {
  }
  parent->free_fn(parent->user_data, storage);
  return nullptr;
}

// An object size no slab takes, said in one line (the C++ constructors throw instead).
bool slab_object_refused(const char *where, std::size_t object_size) noexcept {
  if (object_size <= mesa::internal::slab_geometry::kMaxObjectSize) return false;
  std::fprintf(stderr, "mesa_alloc: %s: object size %zu is over the slab limit (1 GiB)\n", where,
               object_size);
  return true;
}

template <class T>
void destroy_in(const mesa_allocator *parent, T *object) noexcept {
  object->~T();
  parent->free_fn(parent->user_data, object);
}

}  // namespace

bool mesa::internal::is_slab_table(const mesa_allocator *table) noexcept {
  return from_table<c_slab_resource>(table) != nullptr ||
         from_table<c_slab_child>(table) != nullptr;
}

extern "C" {

const mesa_allocator *mesa_arena_create(const mesa_allocator *parent) {
  return c_handle_create<mesa::arena_resource>("mesa_arena", parent);
}

void mesa_arena_release(const mesa_allocator *arena) {
  if (auto *handle = mesa::internal::c_handle<mesa::arena_resource>::from_table(arena))
    handle->release();
}

void mesa_arena_destroy(const mesa_allocator *arena) {
  c_handle_destroy<mesa::arena_resource>(arena);
}

const mesa_allocator *mesa_slab_create(const mesa_allocator *parent, size_t object_size) {
  if (object_size == 0 || slab_object_refused("mesa_slab_create", object_size)) return nullptr;
  parent = mesa::internal::parent_or_default(parent, "mesa_slab_create");
  if (parent == nullptr) return nullptr;
  c_slab_resource *slab =
      create_in<c_slab_resource>("mesa_slab_create", parent, parent, object_size);
  if (slab == nullptr) return nullptr;
  slab->forward_notifications("mesa_slab_create");
  return &slab->table;
}

void mesa_slab_destroy(const mesa_allocator *slab) {
  if (c_slab_resource *self = from_table<c_slab_resource>(slab)) destroy_in(self->parent, self);
}

mesa_slab_parent *mesa_slab_parent_create(const mesa_allocator *parent, size_t object_size) {
  if (object_size == 0 || slab_object_refused("mesa_slab_parent_create", object_size)) {
    return nullptr;
  }
  parent = mesa::internal::parent_or_default(parent, "mesa_slab_parent_create");
  if (parent == nullptr) return nullptr;
  return create_in<mesa_slab_parent>("mesa_slab_parent_create", parent, parent, object_size);
}

void mesa_slab_parent_destroy(mesa_slab_parent *parent) {
  if (parent != nullptr) destroy_in(parent->parent, parent);
}

void mesa_slab_parent_free(mesa_slab_parent *parent, void *block) {
  if (parent != nullptr) parent->slab.deallocate_object(block);
}

const mesa_allocator *mesa_slab_child_create(mesa_slab_parent *parent) {
  if (parent == nullptr) return nullptr;
  c_slab_child *child =
      create_in<c_slab_child>("mesa_slab_child_create", parent->parent, parent->parent, parent);
  if (child == nullptr) return nullptr;
  child->forward_notifications("mesa_slab_child_create");
  return &child->table;
}

void mesa_slab_child_destroy(const mesa_allocator *child) {
  if (c_slab_child *self = from_table<c_slab_child>(child)) destroy_in(self->parent, self);
}

const mesa_allocator *mesa_pool_create(const mesa_allocator *parent) {
  return c_handle_create<mesa::pool_resource>("mesa_pool", parent);
}

void mesa_pool_destroy(const mesa_allocator *pool) { c_handle_destroy<mesa::pool_resource>(pool); }

const mesa_allocator *mesa_synchronized_pool_create(const mesa_allocator *parent) {
  return c_handle_create<mesa::synchronized_pool_resource>("mesa_synchronized_pool", parent);
}

void mesa_synchronized_pool_destroy(const mesa_allocator *pool) {
  c_handle_destroy<mesa::synchronized_pool_resource>(pool);
}

}  // extern "C"
