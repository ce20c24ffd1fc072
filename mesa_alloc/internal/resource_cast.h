// Internal: an RTTI-free dynamic_cast to the library's own final resources. Not part of the
// public API.
//
// What it is for: Mesa builds its C++ with -fno-rtti whenever its LLVM was built without RTTI
// (meson's cpp_rtti=false), so nothing a Mesa build compiles may use dynamic_cast or typeid.
// Some resources still need to know whether another std::pmr::memory_resource is one of theirs:
// two callback_resources or vk_resources on one table compare equal, children of one slab
// parent compare equal, direct_upstream calls a callback_resource's table directly, and the C
// API checks that a debug table is one it made. They ask the other resource through the one
// virtual of memory_resource that takes another resource, is_equal: the question is a
// resource_query, recognised by its address (this thread's current question), and each class
// that can be found answers it first thing in its do_is_equal.
//
// What it costs: one virtual call and a few thread-local accesses per question; asked on
// is_equal and at construction, never per allocation. A resource that is not ours never
// answers, so the cast gives nullptr for it, as dynamic_cast would. Unlike dynamic_cast it runs
// the other resource's do_is_equal, which may be a program's own code: is_equal of these
// classes does, and so does building a resource over an upstream through direct_upstream
// (debug_resource, tracking_resource and others ask whether the upstream is a
// callback_resource).
//
// Example (a class that can be found, and a cast to it):
//   bool callback_resource::do_is_equal(const std::pmr::memory_resource &other) const noexcept {
//     if (internal::answer_resource_query(other, this)) return false;
//     const callback_resource *that = internal::resource_cast<callback_resource>(other);
//     return that != nullptr && that->table() == table();
//   }
#ifndef MESA_ALLOC_INTERNAL_RESOURCE_CAST_H_
#define MESA_ALLOC_INTERNAL_RESOURCE_CAST_H_

#include <memory_resource>
#include <type_traits>

namespace mesa {

class callback_resource;
class slab_child;
class vk_resource;

namespace internal {

struct debug_table;

// The classes a resource_cast can find; each is final, so the kind is its exact type. And
// `debug`: a debug_resource, or a class derived from it that keeps its do_is_equal, found by
// find_resource (not final, so no resource_cast).
enum class resource_kind { callback, slab_child, vulkan, debug_table, debug };

template <class T>
struct kind_of;  // defined for those classes only
template <>
struct kind_of<callback_resource> : std::integral_constant<resource_kind, resource_kind::callback> {
};
template <>
struct kind_of<slab_child> : std::integral_constant<resource_kind, resource_kind::slab_child> {};
template <>
struct kind_of<vk_resource> : std::integral_constant<resource_kind, resource_kind::vulkan> {};
template <>
struct kind_of<debug_table> : std::integral_constant<resource_kind, resource_kind::debug_table> {};

// `r` itself when it answers as `kind`, else nullptr (also when r hands the question on to
// another resource that answers).
const std::pmr::memory_resource *find_resource(const std::pmr::memory_resource &r,
                                               resource_kind kind) noexcept;

// First thing in the do_is_equal of a class that can be found: true when `other` is the
// question in progress on this thread (then do_is_equal returns; its result is not used).
bool answer_resource_query(const std::pmr::memory_resource &other, resource_kind kind,
                           const std::pmr::memory_resource *self) noexcept;

template <class T>
bool answer_resource_query(const std::pmr::memory_resource &other, const T *self) noexcept {
  static_assert(std::is_final_v<T>, "only a final class's kind is its exact type");
  return answer_resource_query(other, kind_of<T>::value, self);
}

// dynamic_cast<const T *>(&r) for the classes above, without RTTI.
template <class T>
const T *resource_cast(const std::pmr::memory_resource &r) noexcept {
  static_assert(std::is_final_v<T>, "only a final class's kind is its exact type");
  return static_cast<const T *>(find_resource(r, kind_of<T>::value));
}

}  // namespace internal
}  // namespace mesa

#endif  // MESA_ALLOC_INTERNAL_RESOURCE_CAST_H_
