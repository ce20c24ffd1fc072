#include "containers/testing/driver_component.h"

#include <string_view>
#include <utility>

#include "containers/arena_containers.h"
#include "containers/containers.h"
#include "containers/resource_allocated.h"
#include "containers/scoped_resource.h"
#include "containers/unique_ptr.h"
#include "mesa_alloc/arena_resource.h"

namespace mesa::testing {
namespace {

struct value : resource_allocated {
  explicit value(int id) : id(id) {}
  virtual ~value() = default;
  virtual std::uint64_t weight() const { return static_cast<std::uint64_t>(id); }
  int id;
};

struct instruction : value {
  instruction(int id, std::pmr::memory_resource *resource) : value(id), sources(resource) {}
  std::uint64_t weight() const override { return value::weight() * 3 + sources.size(); }
  mesa::inlined_vector<int, 2> sources;
};

struct symbol_table {
  explicit symbol_table(std::pmr::memory_resource *resource)
      : names(resource), ids(resource), uses(resource) {}

  int intern(std::string_view name) {
    auto [it, inserted] =
        ids.try_emplace(mesa::string(name, names.get_allocator()), static_cast<int>(names.size()));
    if (inserted) names.emplace_back(name);
    return it->second;
  }

  mesa::vector<mesa::string> names;
  mesa::node_hash_map<mesa::string, int> ids;
  mesa::flat_hash_map<int, mesa::vector<int>> uses;
};

}  // namespace

std::uint64_t run_driver_component(std::pmr::memory_resource *resource, int size) {
  scoped_resource scope(resource);
  std::pmr::memory_resource *r = current_resource();
  std::uint64_t checksum = 0;

  symbol_table symbols(r);
  mesa::vector<mesa::unique_ptr<value>> values(r);
  mesa::string name(r);
  for (int i = 0; i < size; ++i) {
    name.assign("a_symbol_name_long_enough_for_the_heap_");
    name += static_cast<char>('a' + i % 26);
    name += static_cast<char>('a' + i / 26 % 26);
    const int id = symbols.intern(name);
    auto inst = allocate_unique<instruction>(r, i, r);
    inst->sources.push_back(id);
    if (i > 0) inst->sources.push_back(i - 1);
    if (i % 3 == 0) inst->sources.push_back(i / 3);  // grows past the inline capacity
    symbols.uses[id].push_back(i);
    values.push_back(std::move(inst));  // derived-to-base unique_ptr
  }

  mesa::map<int, int> order(r);
  mesa::set<int> seen(r);
  mesa::unordered_map<int, mesa::string> comments(r);
  mesa::unordered_set<std::uint64_t> weights(r);
  mesa::flat_hash_set<int> live(r);
  mesa::node_hash_set<int> dead(r);
  mesa::deque<int> worklist(r);
  mesa::list<int> schedule(r);
  for (const auto &v : values) {
    order.emplace(-v->id, v->id);
    seen.insert(v->id % 97);
    weights.insert(v->weight());
    if (v->id % 4 == 0) {
      dead.insert(v->id);
    } else {
      live.insert(v->id);
    }
    worklist.push_back(v->id);
  }
  for (const auto &[id, uses] : symbols.uses) comments[id] = symbols.names[id];
  while (!worklist.empty()) {
    const int id = worklist.front();
    worklist.pop_front();
    if (live.erase(id) != 0) schedule.push_front(id);
  }
  {
    // A pass's scratch data on an arena: the hot-path aliases.
    arena_resource arena(r);
    arena_vector<int> order_of(&arena);
    arena_flat_hash_map<int, int> position(&arena);
    arena_map<int, int> by_rank(&arena);
    for (int id : schedule) {
      position[id] = static_cast<int>(order_of.size());
      by_rank.emplace(static_cast<int>(order_of.size()), id);
      order_of.push_back(id);
    }
    checksum += static_cast<std::uint64_t>(position.size() + by_rank.size());
  }
  live.rehash(0);
  comments.rehash(1024);

  auto ranks = allocate_unique<std::uint32_t[]>(r, static_cast<std::size_t>(size) + 1);
  for (int id : schedule) ranks[static_cast<std::size_t>(id)] = static_cast<std::uint32_t>(id) + 1;
  auto shared = allocate_shared<mesa::vector<mesa::string>>(r, symbols.names);
  std::shared_ptr<mesa::vector<mesa::string>> alias = shared;
  value *raw = new (r) instruction(size, r);
  value *block = new (r) value[3]{value(1), value(2), value(3)};

  mesa::vector<mesa::string> moved(std::move(symbols.names), r);
  mesa::vector<mesa::string> other(r);
  swap_contents(moved, other);

  for (const auto &[key, id] : order)
    checksum = checksum * 31 + static_cast<std::uint64_t>(key + id);
  for (std::size_t i = 0; i <= static_cast<std::size_t>(size); ++i) checksum += ranks[i];
  checksum = checksum * 7 + seen.size() + weights.size() + dead.size() + schedule.size();
  checksum = checksum * 7 + comments.size() + alias->size() + other.size() + raw->weight();
  checksum += block[0].weight() + block[1].weight() + block[2].weight();
  delete raw;
  delete[] block;
  return checksum;
}

}  // namespace mesa::testing
