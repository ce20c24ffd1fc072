// Audit fixture: std::pmr containers made without their resource, or on new_delete_resource(),
// reach the global operator new inside libstdc++.so, where no relocation of this object shows
// it; the references to std::pmr::get_default_resource() and new_delete_resource() do.
#include <memory_resource>
#include <vector>

int bad_pmr_default_sum(int n) {
  std::pmr::vector<int> on_default;  // the default resource: operator new unless set
  std::pmr::vector<int> on_new_delete(std::pmr::new_delete_resource());
  for (int i = 0; i < n; i++) {
    on_default.push_back(i);
    on_new_delete.push_back(i);
  }
  int sum = 0;
  for (int x : on_default) sum += x;
  return sum + static_cast<int>(on_new_delete.size());
}
