// ir.h — the SSA intermediate representation of the example compiler backend.
//
// What it is for: shaders (a symbol table plus functions), functions (basic blocks in layout
// order), blocks (predecessor/successor lists, instructions with the phis first and one
// terminator last) and instructions that are also the SSA values they define, each with its
// operand list and its use list. Written the way ACO/NIR backends are: every object and every
// list comes from the shader's allocator `A` (see alloc.h), so the whole IR of a shader can
// live in one arena that is released at once.
//
// What it costs: one allocation per instruction, per block, per symbol, plus the growth of
// the operand/use/pred/succ/instruction vectors; use-list edits are O(uses of the value).
//
// Example:
//   Shader<A> shader(a);
//   Function<A> *f = shader.add_function("main", 1);
//   Block<A> *b = f->add_block();
//   Instr<A> *x = f->append(b, Op::kInput); x->imm = 0;
//   Instr<A> *r = f->append(b, Op::kRet); add_operand(r, x);
#ifndef EXAMPLES_COMPILER_BACKEND_IR_H_
#define EXAMPLES_COMPILER_BACKEND_IR_H_

#include <cstdint>
#include <string_view>

#include "examples/compiler_backend/alloc.h"

namespace compiler_backend {

enum class Op : std::uint8_t {
  kInput,  // function parameter number `imm`
  kConst,  // the 32-bit constant `imm`
  kMov,
  kNeg,
  kNot,
  kAdd,
  kSub,
  kMul,
  kAnd,
  kOr,
  kXor,
  kShl,  // shift amounts are taken modulo 32
  kShr,  // logical
  kMin,  // signed
  kMax,
  kLt,  // signed compare, 0 or 1
  kEq,
  kSelect,  // operands: condition, value if non-zero, value if zero
  kPhi,     // one operand per predecessor, in predecessor order
  kLoad,    // `symbol`[operand 0]
  kStore,   // `symbol`[operand 0] = operand 1
  kBr,      // operand 0 non-zero: successor 0, else successor 1
  kJmp,
  kRet,
};

inline constexpr int kNumOps = static_cast<int>(Op::kRet) + 1;

struct OpInfo {
  const char *name;
  std::int8_t num_operands;  // -1: one per predecessor (phi)
  bool has_def;
  bool pure;  // no side effect and depends only on its operands and imm: GVN may merge it
  bool commutative;
  bool terminator;
  bool side_effect;  // stays alive without uses (DCE roots)
  bool has_symbol;
};

inline const OpInfo &op_info(Op op) {
  static constexpr OpInfo kInfo[kNumOps] = {
      {"input", 0, true, false, false, false, false, false},
      {"const", 0, true, true, false, false, false, false},
      {"mov", 1, true, true, false, false, false, false},
      {"neg", 1, true, true, false, false, false, false},
      {"not", 1, true, true, false, false, false, false},
      {"add", 2, true, true, true, false, false, false},
      {"sub", 2, true, true, false, false, false, false},
      {"mul", 2, true, true, true, false, false, false},
      {"and", 2, true, true, true, false, false, false},
      {"or", 2, true, true, true, false, false, false},
      {"xor", 2, true, true, true, false, false, false},
      {"shl", 2, true, true, false, false, false, false},
      {"shr", 2, true, true, false, false, false, false},
      {"min", 2, true, true, true, false, false, false},
      {"max", 2, true, true, true, false, false, false},
      {"lt", 2, true, true, false, false, false, false},
      {"eq", 2, true, true, true, false, false, false},
      {"select", 3, true, true, false, false, false, false},
      {"phi", -1, true, true, false, false, false, false},
      {"load", 1, true, false, false, false, false, true},
      {"store", 2, false, false, false, false, true, true},
      {"br", 1, false, false, false, true, true, false},
      {"jmp", 0, false, false, false, true, true, false},
      {"ret", 1, false, false, false, true, true, false},
  };
  return kInfo[static_cast<int>(op)];
}

inline constexpr std::uint32_t kNoValue = 0xffffffffu;
// Instr::loc: >= 0 a register, <= kFirstSpillLoc a spill slot (kFirstSpillLoc - slot).
inline constexpr std::int32_t kNoLoc = -1;
inline constexpr std::int32_t kFirstSpillLoc = -2;

// A buffer is read and written; a uniform is only read (verify_ssa refuses a store to one).
enum class SymbolKind : std::uint8_t { kBuffer, kUniform };

template <class A>
struct Symbol {
  Symbol(const A &a, std::string_view n, SymbolKind k, std::uint32_t i, std::uint32_t s)
      : name(n, a), kind(k), index(i), size(s) {}
  str<A> name;
  SymbolKind kind;
  std::uint32_t index;  // position in Shader::symbols
  std::uint32_t size;   // elements; indices are taken modulo size
};

template <class A>
struct Block;

template <class A>
struct Instr {
  Instr(const A &a, Op o) : op(o), operands(a), uses(a) {}

  bool has_def() const { return op_info(op).has_def; }

  Op op;
  std::uint32_t id = kNoValue;  // SSA value number when has_def()
  std::int32_t loc = kNoLoc;    // register or spill slot after register allocation
  std::int32_t imm = 0;
  Symbol<A> *symbol = nullptr;
  Block<A> *block = nullptr;
  vec<Instr *, A> operands;
  vec<Instr *, A> uses;  // one entry per operand slot that refers to this value
};

template <class A>
struct Block {
  Block(const A &a, std::uint32_t i) : index(i), preds(a), succs(a), instrs(a) {}

  std::uint32_t index;  // position in Function::blocks
  vec<Block *, A> preds;
  vec<Block *, A> succs;
  vec<Instr<A> *, A> instrs;
  // Filled by compute_dominance(): immediate dominator (nullptr for the entry), position in
  // reverse post-order, and dominator-tree pre/post numbers (a dominates b iff
  // a.dom_pre <= b.dom_pre && b.dom_post <= a.dom_post).
  Block *idom = nullptr;
  std::uint32_t rpo_index = 0;
  std::uint32_t dom_pre = 0;
  std::uint32_t dom_post = 0;

  Instr<A> *terminator() const { return instrs.empty() ? nullptr : instrs.back(); }
};

template <class A>
bool dominates(const Block<A> *a, const Block<A> *b) {
  return a->dom_pre <= b->dom_pre && b->dom_post <= a->dom_post;
}

// ---- use-list maintenance: every operand slot has exactly one entry in its value's uses.

template <class A>
void add_operand(Instr<A> *user, Instr<A> *value) {
  user->operands.push_back(value);
  value->uses.push_back(user);
}

template <class A>
void remove_use(Instr<A> *value, Instr<A> *user) {
  auto &uses = value->uses;
  for (std::size_t i = 0; i < uses.size(); ++i) {
    if (uses[i] == user) {
      uses[i] = uses.back();
      uses.pop_back();
      return;
    }
  }
}

template <class A>
void set_operand(Instr<A> *user, std::size_t slot, Instr<A> *value) {
  remove_use(user->operands[slot], user);
  user->operands[slot] = value;
  value->uses.push_back(user);
}

template <class A>
void drop_operands(Instr<A> *user) {
  for (Instr<A> *v : user->operands) remove_use(v, user);
  user->operands.clear();
}

// Every use of `from` now refers to `to` (from != to); `from` is left without uses.
template <class A>
void replace_all_uses(Instr<A> *from, Instr<A> *to) {
  // Each entry rewrites its user's first slot still naming `from`. A user listed several times
  // in a row (a phi taking `from` from many predecessors) is scanned once, each entry going on
  // from the slot after the last one's (a user listed apart is scanned again from its start).
  const Instr<A> *previous = nullptr;
  std::size_t next = 0;
  for (Instr<A> *user : from->uses) {
    if (user != previous) next = 0;
    previous = user;
    auto &operands = user->operands;
    while (next < operands.size() && operands[next] != from) ++next;
    if (next < operands.size()) operands[next++] = to;
    to->uses.push_back(user);
  }
  from->uses.clear();
}

template <class A>
struct Function {
  Function(const A &a, std::string_view n, std::uint32_t params)
      : alloc(a), name(n, a), num_params(params), blocks(a), values(a), rpo(a) {}
  Function(const Function &) = delete;
  Function &operator=(const Function &) = delete;
  ~Function() {
    for (Block<A> *b : blocks) {
      for (Instr<A> *i : b->instrs) delete_object(alloc, i);
      delete_object(alloc, b);
    }
  }

  Block<A> *add_block() {
    object_guard<Block<A>, A> b(
        alloc, new_object<Block<A>>(alloc, alloc, static_cast<std::uint32_t>(blocks.size())));
    blocks.push_back(b.get());
    return b.release();
  }

  // A new instruction at the end of `b` (phis: see insert_phi); gets the next value id if it
  // defines one.
  Instr<A> *append(Block<A> *b, Op op) {
    b->instrs.push_back(nullptr);  // the slot first: a failed make() then leaves no orphan
    return place(b, b->instrs.end() - 1, [&] { return make(op); });
  }

  // A new phi after the existing phis of `b`.
  Instr<A> *insert_phi(Block<A> *b) {
    auto it = b->instrs.begin();
    while (it != b->instrs.end() && (*it)->op == Op::kPhi) ++it;
    return place(b, b->instrs.insert(it, nullptr), [&] { return make(Op::kPhi); });
  }

  // An instruction not yet in a block, with value id `id` (the parser's explicit numbering).
  Instr<A> *make_with_id(Op op, std::uint32_t id) {
    object_guard<Instr<A>, A> i(alloc, new_object<Instr<A>>(alloc, alloc, op));
    if (id >= values.size()) values.resize(id + 1, nullptr);
    i.get()->id = id;
    values[id] = i.get();
    return i.release();
  }

  // The instruction `create()` makes, into the empty slot `at` of `b`'s list (made first, so a
  // failing create() leaves no orphan); the slot is removed again if create() throws.
  template <class Create>
  Instr<A> *place(Block<A> *b, typename vec<Instr<A> *, A>::iterator at, Create create) {
    Instr<A> *i;
    try {
      i = create();
    } catch (...) {
      b->instrs.erase(at);
      throw;
    }
    i->block = b;
    *at = i;
    return i;
  }

  // Removes `i` (which must have no uses) from the value table and frees it; the caller
  // removes it from its block's instruction list.
  void destroy(Instr<A> *i) {
    drop_operands(i);
    if (i->has_def()) values[i->id] = nullptr;
    delete_object(alloc, i);
  }

  A alloc;
  str<A> name;
  std::uint32_t num_params;
  vec<Block<A> *, A> blocks;
  vec<Instr<A> *, A> values;  // value id -> defining instruction (nullptr once removed)
  vec<Block<A> *, A> rpo;     // reverse post-order, filled by compute_dominance()
  std::uint32_t num_spill_slots = 0;

 private:
  Instr<A> *make(Op op) {
    object_guard<Instr<A>, A> i(alloc, new_object<Instr<A>>(alloc, alloc, op));
    std::int8_t arity = op_info(op).num_operands;
    if (arity != 0) i.get()->operands.reserve(arity < 0 ? 2 : arity);
    if (i.get()->has_def()) {
      i.get()->id = static_cast<std::uint32_t>(values.size());
      values.push_back(i.get());
    }
    return i.release();
  }
};

struct str_hash {
  template <class S>
  std::size_t operator()(const S &s) const {
    return std::hash<std::string_view>()(std::string_view(s.data(), s.size()));
  }
};

template <class A>
struct Shader {
  explicit Shader(const A &a) : alloc(a), functions(a), symbols(a), symbol_table(a) {}
  Shader(const Shader &) = delete;
  Shader &operator=(const Shader &) = delete;
  ~Shader() {
    for (Function<A> *f : functions) delete_object(alloc, f);
    for (Symbol<A> *s : symbols) delete_object(alloc, s);
  }

  Function<A> *add_function(std::string_view name, std::uint32_t num_params) {
    object_guard<Function<A>, A> f(alloc, new_object<Function<A>>(alloc, alloc, name, num_params));
    functions.push_back(f.get());
    return f.release();
  }

  // nullptr if a symbol of that name exists already.
  Symbol<A> *add_symbol(std::string_view name, SymbolKind kind, std::uint32_t size) {
    object_guard<Symbol<A>, A> s(
        alloc, new_object<Symbol<A>>(alloc, alloc, name, kind,
                                     static_cast<std::uint32_t>(symbols.size()), size));
    auto [entry, added] = symbol_table.emplace(s.get()->name, s.get());
    if (!added) return nullptr;
    try {
      symbols.push_back(s.get());
    } catch (...) {
      symbol_table.erase(entry);
      throw;
    }
    return s.release();
  }

  A alloc;
  vec<Function<A> *, A> functions;
  vec<Symbol<A> *, A> symbols;
  hash_map<str<A>, Symbol<A> *, A, str_hash> symbol_table;
};

// Recomputes every block's predecessor list from the successor lists (in block order, then
// successor order: the canonical order the text form relies on) and reorders phi operands to
// match. Edges between the same two blocks must be unique.
template <class A>
void canonicalize_preds(Function<A> &f) {
  vec<Block<A> *, A> old_preds(f.alloc);
  vec<Instr<A> *, A> reordered(f.alloc);
  vec<vec<Block<A> *, A>, A> fresh(f.alloc);
  fresh.reserve(f.blocks.size());
  for (std::size_t i = 0; i < f.blocks.size(); ++i) fresh.push_back(vec<Block<A> *, A>(f.alloc));
  for (Block<A> *b : f.blocks) {
    for (Block<A> *s : b->succs) fresh[s->index].push_back(b);
  }
  for (Block<A> *b : f.blocks) {
    old_preds.assign(b->preds.begin(), b->preds.end());
    b->preds.assign(fresh[b->index].begin(), fresh[b->index].end());
    if (old_preds == b->preds) continue;
    for (Instr<A> *phi : b->instrs) {
      if (phi->op != Op::kPhi) break;
      reordered.clear();
      for (Block<A> *p : b->preds) {
        for (std::size_t k = 0; k < old_preds.size(); ++k) {
          if (old_preds[k] == p) reordered.push_back(phi->operands[k]);
        }
      }
      phi->operands.assign(reordered.begin(), reordered.end());
    }
  }
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_IR_H_
