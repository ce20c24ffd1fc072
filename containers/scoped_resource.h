// scoped_resource — gives a component one resource without threading it through every call.
//
// What it is for: code deep in a component (a compiler pass, a pipeline builder) asks
// mesa::current_resource() for the resource to build its containers and objects on, and the
// entry point of the component says once which one that is:
//
//   void compile_shader(const shader_info &info, std::pmr::memory_resource *arena) {
//     mesa::scoped_resource scope(arena);  // this thread, until `scope` ends
//     run_passes(info);
//   }
//   // ... and deep inside run_passes:
//   mesa::vector<int> live(mesa::current_resource());
//
// What it costs: a thread_local pointer read per current_resource() call (out of line); a
// guard is two pointers on the stack.
//
// The rule that keeps it from becoming a hidden global that frees through the wrong resource:
// current_resource() is read ONCE, when something is created, and the created thing keeps the
// resource (containers in their allocator, mesa::unique_ptr in its deleter, resource_allocated
// objects in their header). Nothing ever frees "through the current resource". Pitfalls:
//   - Lifetime: whatever is created inside a scope and outlives it still belongs to that
//     resource; destroy it before the resource (e.g. before the arena is released).
//   - Threads: the scope is per thread. Work handed to another thread sees that thread's scope
//     (or the default); pass the resource along explicitly.
//   - Nesting is strictly LIFO. A guard destroyed out of order (or on another thread) is a
//     bug: the program prints "mesa_alloc: scoped_resource destroyed out of order" and aborts.
//   - It does not change std::pmr::get_default_resource(): a container constructed without a
//     resource (or copy-constructed) still ignores the scope. Pass current_resource().
#ifndef MESA_CONTAINERS_SCOPED_RESOURCE_H_
#define MESA_CONTAINERS_SCOPED_RESOURCE_H_

#include <cstddef>
#include <memory_resource>

namespace mesa {

// A resource over mesa_default_allocator(), bound to the default table on first use (the
// default is a start-up choice). Never operator new.
std::pmr::memory_resource *default_resource() noexcept;

// The innermost scoped_resource of this thread, else default_resource().
std::pmr::memory_resource *current_resource() noexcept;

class scoped_resource {
 public:
  // `resource` NULL means default_resource().
  explicit scoped_resource(std::pmr::memory_resource *resource) noexcept;
  ~scoped_resource();

  scoped_resource(const scoped_resource &) = delete;
  scoped_resource &operator=(const scoped_resource &) = delete;
  // A guard lives on the stack of the thread that made it.
  static void *operator new(std::size_t) = delete;
  static void *operator new[](std::size_t) = delete;

  std::pmr::memory_resource *resource() const noexcept { return resource_; }

 private:
  std::pmr::memory_resource *resource_;
  const scoped_resource *previous_;
};

}  // namespace mesa

#endif  // MESA_CONTAINERS_SCOPED_RESOURCE_H_
