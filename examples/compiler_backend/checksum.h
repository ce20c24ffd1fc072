// checksum.h — a 64-bit FNV-1a digest of compiled IR.
//
// What it is for: proving that every allocator choice computes the same result. It covers the
// final code — per block its successors and per instruction the opcode, value number,
// register or spill slot, constant, symbol and operand value numbers — and nothing that
// depends on addresses.
//
// What it costs: O(instructions), no allocation.
//
// Example:
//   std::uint64_t h = kChecksumSeed;
//   for (Function<A> *f : shader.functions) h = checksum(*f, h);
#ifndef EXAMPLES_COMPILER_BACKEND_CHECKSUM_H_
#define EXAMPLES_COMPILER_BACKEND_CHECKSUM_H_

#include <cstdint>

#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

inline constexpr std::uint64_t kChecksumSeed = 0xcbf29ce484222325ull;

inline std::uint64_t checksum_word(std::uint64_t h, std::uint64_t word) {
  for (int k = 0; k < 8; ++k) {
    h ^= (word >> (8 * k)) & 0xff;
    h *= 0x100000001b3ull;
  }
  return h;
}

template <class A>
std::uint64_t checksum(const Function<A> &f, std::uint64_t h) {
  h = checksum_word(h, f.blocks.size());
  for (const Block<A> *b : f.blocks) {
    for (const Block<A> *s : b->succs) h = checksum_word(h, s->index);
    for (const Instr<A> *i : b->instrs) {
      h = checksum_word(h, static_cast<std::uint64_t>(i->op) | std::uint64_t{i->id} << 8);
      h = checksum_word(h, static_cast<std::uint32_t>(i->loc) |
                               std::uint64_t{static_cast<std::uint32_t>(i->imm)} << 32);
      if (i->symbol != nullptr) h = checksum_word(h, i->symbol->index);
      for (const Instr<A> *o : i->operands) h = checksum_word(h, o->id);
    }
  }
  return h;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_CHECKSUM_H_
