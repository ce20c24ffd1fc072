// Audit fixture: std::vector with the default allocator instantiates std::allocator inline,
// which calls the global operator new/delete — invisible to poison.h, caught by the audit.
#include <vector>

int bad_std_vector_sum(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; i++) v.push_back(i);
  int sum = 0;
  for (int x : v) sum += x;
  return sum;
}
