// driver_component — a sample C++ "driver component" written the mesa_alloc way, and its twin
// written the usual way, for the link-time proof (alloc_audit_test) and the run-time proof.
//
// run_driver_component() is a miniature compiler front end: it interns symbol names, builds
// instructions and use lists, value-numbers, schedules — touching every container alias,
// nested containers, allocate_unique (objects and arrays), allocate_shared, the
// resource_allocated mixin and arena containers — all on `resource`. Its object file must
// reference no global operator new/delete and no malloc/free. run_driver_component_std_twin()
// does the same kind of work on std::vector with the default allocator; the audit must catch
// it.
//
// Cost: test fixture only.
#ifndef MESA_CONTAINERS_TESTING_DRIVER_COMPONENT_H_
#define MESA_CONTAINERS_TESTING_DRIVER_COMPONENT_H_

#include <cstddef>
#include <cstdint>
#include <memory_resource>

namespace mesa::testing {

// Deterministic for a given `size`: the same checksum on every resource.
std::uint64_t run_driver_component(std::pmr::memory_resource *resource, int size);

std::uint64_t run_driver_component_std_twin(int size);

}  // namespace mesa::testing

#endif  // MESA_CONTAINERS_TESTING_DRIVER_COMPONENT_H_
