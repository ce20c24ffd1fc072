#include <vector>

#include "containers/testing/driver_component.h"

namespace mesa::testing {

// The usual way: std::vector with the default allocator — global operator new/delete.
std::uint64_t run_driver_component_std_twin(int size) {
  std::vector<int> values;
  for (int i = 0; i < size; ++i) values.push_back(i * 3);
  std::uint64_t checksum = 0;
  for (int v : values) checksum = checksum * 31 + static_cast<std::uint64_t>(v);
  return checksum;
}

}  // namespace mesa::testing
