// printer.h — the textual form of the IR (the inverse of parser.h).
//
// What it is for: dumping shaders for humans and tests, and the print → parse → print
// round trip. The format, one item per line ('; ' starts a comment):
//
//   shader
//   symbol @b0 buffer 64
//   function @main(2) {
//   bb0:
//     %0 = input 0
//     %1:r3 = const 7            ; ":r3" register 3, ":s1" spill slot 1 (after regalloc)
//     %2 = add %0, %1
//     store @b0, %2, %1
//     br %2, bb1, bb2
//   bb1:
//     %3 = phi [%2, bb0], [%5, bb2]   ; one [value, predecessor] per predecessor
//     ...
//   }
//
// What it costs: one std::string for the whole text (not for the compile path).
//
// Example:
//   std::string text = compiler_backend::print(shader);
#ifndef EXAMPLES_COMPILER_BACKEND_PRINTER_H_
#define EXAMPLES_COMPILER_BACKEND_PRINTER_H_

#include <string>

#include "examples/compiler_backend/ir.h"

namespace compiler_backend {

namespace internal {

inline void print_value_ref(std::string &out, std::uint32_t id) {
  out += '%';
  out += std::to_string(id);
}

inline void print_block_ref(std::string &out, std::uint32_t index) {
  out += "bb";
  out += std::to_string(index);
}

}  // namespace internal

template <class A>
void print_instr(std::string &out, const Instr<A> &i) {
  using internal::print_block_ref;
  using internal::print_value_ref;
  const OpInfo &info = op_info(i.op);
  out += "  ";
  if (i.has_def()) {
    print_value_ref(out, i.id);
    if (i.loc >= 0) {
      out += ":r" + std::to_string(i.loc);
    } else if (i.loc <= kFirstSpillLoc) {
      out += ":s" + std::to_string(kFirstSpillLoc - i.loc);
    }
    out += " = ";
  }
  out += info.name;
  const char *sep = " ";
  if (info.has_symbol) {
    out += " @";
    out.append(i.symbol->name.data(), i.symbol->name.size());
    sep = ", ";
  }
  if (i.op == Op::kConst || i.op == Op::kInput) {
    out += ' ';
    out += std::to_string(i.imm);
  } else if (i.op == Op::kPhi) {
    for (std::size_t k = 0; k < i.operands.size(); ++k) {
      out += sep;
      out += '[';
      print_value_ref(out, i.operands[k]->id);
      out += ", ";
      print_block_ref(out, i.block->preds[k]->index);
      out += ']';
      sep = ", ";
    }
  } else {
    for (const Instr<A> *v : i.operands) {
      out += sep;
      print_value_ref(out, v->id);
      sep = ", ";
    }
  }
  if (i.op == Op::kBr || i.op == Op::kJmp) {
    for (const Block<A> *s : i.block->succs) {
      out += sep;
      print_block_ref(out, s->index);
      sep = ", ";
    }
  }
  out += '\n';
}

template <class A>
void print_function(std::string &out, const Function<A> &f) {
  out += "function @";
  out.append(f.name.data(), f.name.size());
  out += '(' + std::to_string(f.num_params) + ") {\n";
  for (const Block<A> *b : f.blocks) {
    internal::print_block_ref(out, b->index);
    out += ":\n";
    for (const Instr<A> *i : b->instrs) print_instr(out, *i);
  }
  out += "}\n";
}

template <class A>
std::string print(const Shader<A> &shader) {
  std::string out = "shader\n";
  for (const Symbol<A> *s : shader.symbols) {
    out += "symbol @";
    out.append(s->name.data(), s->name.size());
    out += s->kind == SymbolKind::kBuffer ? " buffer " : " uniform ";
    out += std::to_string(s->size) + '\n';
  }
  for (const Function<A> *f : shader.functions) print_function(out, *f);
  return out;
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_PRINTER_H_
