// Fixture for poison_test.sh: the standard and Abseil headers a C++ component uses must still
// compile after poison.h (declarations such as `using ::malloc;` are not calls), while a call
// to std::malloc must not.
#include <absl/container/flat_hash_map.h>
#include <absl/container/inlined_vector.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <memory_resource>
#include <string>
#include <unordered_map>
#include <vector>

int use_containers() {
  std::pmr::vector<std::pmr::string> v(std::pmr::new_delete_resource());
  v.emplace_back("poison.h leaves the standard library usable");
  return static_cast<int>(v.size());
}

#ifdef CALL_STD_MALLOC
void *call_std_malloc() { return std::malloc(8); }
#endif
