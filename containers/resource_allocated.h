// resource_allocated — a class mixin: `new (resource) T(args…)` and a plain `delete p` that
// returns the block to the resource it came from.
//
// What it is for: C++ components with object graphs built by new/delete (IR nodes, pipeline
// objects) move onto a resource without changing how objects are deleted: derive from
// mesa::resource_allocated, replace `new T(…)` by `new (resource) T(…)`, keep `delete p`.
//
// What it costs: 16 bytes per object (or per array) before the object, holding the resource
// and the block size; max(16, alignof(T)) for over-aligned types. No virtual function, no
// data member: the base is empty. new/delete are out-of-line calls plus one virtual call into
// the resource.
//
// Example:
//   struct ir_node : mesa::resource_allocated {
//     virtual ~ir_node() = default;
//     int opcode = 0;
//   };
//   struct ir_alu : ir_node { int sources[3]; };
//   ir_node *n = new (&arena) ir_alu();        // from `arena`
//   delete n;                                  // back to `arena`, sizeof(ir_alu) bytes
//   ir_alu *many = new (&arena) ir_alu[8];
//   delete[] many;
//
// Plain `new T` (no resource) does not compile: every object says where its memory comes from.
// Deleting a derived object through a base pointer needs a virtual destructor, as always.
#ifndef MESA_CONTAINERS_RESOURCE_ALLOCATED_H_
#define MESA_CONTAINERS_RESOURCE_ALLOCATED_H_

#include <cstddef>
#include <memory_resource>
#include <new>

namespace mesa {

class resource_allocated {
 public:
  // Bytes before each object or array (the documented cost above).
  static constexpr std::size_t header_bytes(std::size_t alignment) noexcept {
    return alignment > kHeaderBytes ? alignment : kHeaderBytes;
  }

  static void *operator new(std::size_t size, std::pmr::memory_resource *resource);
  static void *operator new(std::size_t size, std::align_val_t alignment,
                            std::pmr::memory_resource *resource);
  static void *operator new[](std::size_t size, std::pmr::memory_resource *resource);
  static void *operator new[](std::size_t size, std::align_val_t alignment,
                              std::pmr::memory_resource *resource);

  // `new T` without a resource is a compile error.
  static void *operator new(std::size_t) = delete;
  static void *operator new(std::size_t, std::align_val_t) = delete;
  static void *operator new[](std::size_t) = delete;
  static void *operator new[](std::size_t, std::align_val_t) = delete;

  // `delete p` / `delete[] p`: back to the resource recorded at allocation.
  static void operator delete(void *p) noexcept;
  static void operator delete(void *p, std::align_val_t alignment) noexcept;
  static void operator delete[](void *p) noexcept;
  static void operator delete[](void *p, std::align_val_t alignment) noexcept;

  // Called by the compiler only when a constructor run by `new (resource) T` throws.
  static void operator delete(void *p, std::pmr::memory_resource *resource) noexcept;
  static void operator delete(void *p, std::align_val_t alignment,
                              std::pmr::memory_resource *resource) noexcept;
  static void operator delete[](void *p, std::pmr::memory_resource *resource) noexcept;
  static void operator delete[](void *p, std::align_val_t alignment,
                                std::pmr::memory_resource *resource) noexcept;

  // The resource an object made by `new (resource) T` came from; `p` is the address of the
  // most-derived object. (Not for arrays: the compiler may put a cookie before the elements.)
  static std::pmr::memory_resource *resource_of(const void *p) noexcept;

 protected:
  resource_allocated() = default;
  ~resource_allocated() = default;

 private:
  static constexpr std::size_t kHeaderBytes = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
};

}  // namespace mesa

#endif  // MESA_CONTAINERS_RESOURCE_ALLOCATED_H_
