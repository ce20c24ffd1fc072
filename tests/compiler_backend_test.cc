// Tests of the example compiler backend: text round trip, generator determinism, each pass on
// hand-written IR, an interpreter check that the optimisations keep the meaning of generated
// shaders, the register-allocation verifier, parser errors, one checksum for every allocator
// variant, and out of memory at every allocation point.
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <memory_resource>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "containers/containers.h"
#include "examples/compiler_backend/driver.h"
#include "examples/compiler_backend/parser.h"
#include "examples/compiler_backend/printer.h"
#include "examples/compiler_backend/variants.h"
#include "gtest/gtest.h"
#include "mesa_alloc/fault_resource.h"
#include "mesa_alloc/tracking_resource.h"

namespace compiler_backend {
namespace {

using A = std::allocator<std::byte>;
using Scratch = heap_scratch<A>;

std::unique_ptr<Shader<A>> parse_or_die(const std::string &text) {
  auto shader = std::make_unique<Shader<A>>(A());
  Diagnostic d = parse(text, *shader);
  EXPECT_TRUE(d.ok) << d.message << "\n" << text;
  return shader;
}

std::unique_ptr<Shader<A>> generated(std::uint64_t seed, std::uint32_t size) {
  auto shader = std::make_unique<Shader<A>>(A());
  Scratch scratch;
  generate(*shader, seed, size, scratch);
  return shader;
}

Instr<A> *value(Function<A> &f, std::uint32_t id) { return f.values.at(id); }

// On polymorphic_allocator the IR's containers are exactly the mesa:: container aliases.
using P = std::pmr::polymorphic_allocator<std::byte>;
static_assert(std::is_same_v<vec<Instr<P> *, P>, mesa::vector<Instr<P> *>>);
static_assert(std::is_same_v<decltype(Instr<P>::uses), mesa::vector<Instr<P> *>>);
static_assert(std::is_same_v<decltype(Block<P>::preds), mesa::vector<Block<P> *>>);
static_assert(std::is_same_v<str<P>, mesa::string>);
static_assert(std::is_same_v<hash_set<std::uint32_t, P>, mesa::unordered_set<std::uint32_t>>);
static_assert(std::is_same_v<hash_map<ExprKey, Instr<P> *, P, ExprKeyHash>,
                             mesa::unordered_map<ExprKey, Instr<P> *, ExprKeyHash>>);

// ---- an interpreter, to check that the optimisations keep the meaning of a function.

struct Execution {
  bool finished = false;  // false: stopped at the block limit
  std::int32_t result = 0;
  std::vector<std::int64_t> stores;  // (symbol, index, value) triples, flattened
  std::vector<std::uint32_t> trace;  // blocks executed
};

Execution execute(const Shader<A> &shader, const Function<A> &f,
                  const std::vector<std::int32_t> &args, std::size_t block_limit) {
  Execution e;
  std::vector<std::vector<std::int32_t>> memory;
  for (const Symbol<A> *s : shader.symbols) {
    memory.emplace_back(s->size);
    for (std::uint32_t k = 0; k < s->size; ++k) memory.back()[k] = s->index * 1000 + k;
  }
  std::vector<std::int32_t> regs(f.values.size(), 0);
  auto at = [&](const Instr<A> *v) { return regs[v->id]; };
  auto slot = [&](const Instr<A> *i, std::int32_t index) -> std::int32_t & {
    return memory[i->symbol->index][static_cast<std::uint32_t>(index) % i->symbol->size];
  };
  const Block<A> *b = f.blocks[0];
  const Block<A> *from = nullptr;
  while (e.trace.size() < block_limit) {
    e.trace.push_back(b->index);
    // Phis read their operands on entry, all at once.
    std::vector<std::int32_t> phi_values;
    for (const Instr<A> *i : b->instrs) {
      if (i->op != Op::kPhi) break;
      for (std::size_t k = 0; k < b->preds.size(); ++k) {
        if (b->preds[k] == from) phi_values.push_back(at(i->operands[k]));
      }
    }
    std::size_t phi = 0;
    for (const Instr<A> *i : b->instrs) {
      std::int32_t v[3] = {0, 0, 0};
      for (std::size_t k = 0; k < i->operands.size() && k < 3; ++k) v[k] = at(i->operands[k]);
      switch (i->op) {
        case Op::kPhi:
          regs[i->id] = phi_values[phi++];
          break;
        case Op::kInput:
          regs[i->id] = args[i->imm];
          break;
        case Op::kConst:
          regs[i->id] = i->imm;
          break;
        case Op::kLoad:
          regs[i->id] = slot(i, v[0]);
          break;
        case Op::kStore:
          slot(i, v[0]) = v[1];
          e.stores.insert(e.stores.end(), {i->symbol->index, v[0], v[1]});
          break;
        case Op::kRet:
          e.finished = true;
          e.result = v[0];
          return e;
        case Op::kJmp:
          break;
        case Op::kBr:
          break;
        default:
          EXPECT_TRUE(evaluate(i->op, v, regs[i->id]));
          break;
      }
    }
    from = b;
    const Instr<A> *t = b->terminator();
    b = t->op == Op::kBr && at(t->operands[0]) == 0 ? b->succs[1] : b->succs[0];
  }
  return e;
}

// ---- text form

TEST(CompilerBackendText, PrintParsePrintRoundTrips) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    auto shader = generated(seed, 400);
    std::string text = print(*shader);
    auto reparsed = parse_or_die(text);
    EXPECT_EQ(print(*reparsed), text) << "seed " << seed;
  }
}

TEST(CompilerBackendText, CompiledCodeWithRegistersRoundTrips) {
  auto shader = generated(7, 600);
  Scratch scratch;
  CompileOptions options;
  options.num_registers = 4;
  ASSERT_TRUE(compile_shader(*shader, scratch, options, nullptr).error.ok);
  std::string text = print(*shader);
  EXPECT_NE(text.find(":r3"), std::string::npos);
  EXPECT_NE(text.find(":s0"), std::string::npos);
  auto reparsed = parse_or_die(text);
  EXPECT_EQ(print(*reparsed), text);
  for (Function<A> *f : reparsed->functions) {
    EXPECT_TRUE(verify_registers(*f, 4, scratch).ok);
  }
}

struct BadInput {
  const char *text;
  const char *message;
};

TEST(CompilerBackendText, BadInputGivesOneClearError) {
  const BadInput cases[] = {
      {"", "line 1: empty input"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = addd %1, %2\n  ret %0\n}\n",
       "line 4: unknown opcode 'addd'"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = const 1\n  ret %7\n}\n",
       "line 5: %7 is not defined"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = const 1\n}\n",
       "line 5: bb0 does not end with a terminator"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = const 1\n  %0 = const 2\n  ret %0\n}\n",
       "line 5: %0 defined twice"},
      {"shader\nfunction @f(0) {\nbb0:\n  jmp bb9\n}\n", "line 4: unknown label bb9"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  br %0, bb1, bb2\nbb1:\n  "
       "%1 = const 1\n  jmp bb2\nbb2:\n  %2 = phi [%1, bb1]\n  ret %2\n}\n",
       "line 10: phi %2 has 1 operands but bb2 has 2 predecessors"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  br %0, bb1, bb2\nbb1:\n  "
       "%1 = const 1\n  jmp bb2\nbb2:\n  ret %1\n}\n",
       "lines 2-11: @f: bb2: %1 does not dominate its use by ret"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = const 1\n  ret %0\nbb1:\n  ret %0\n}\n",
       "lines 2-8: @f: bb1 is unreachable"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = load @nope, %0\n  ret %0\n}\n",
       "line 4: unknown symbol @nope"},
      {"shader\nfunction @f(2) {\nbb0:\n  %0 = input 5\n  ret %0\n}\n",
       "line 4: input 5 out of range"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = const 1\n  ret %0\n", "missing '}'"},
      {"shader\nsymbol @b buffer 0\n", "line 2: expected a symbol size"},
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = const 1\n  ret %0\n  ret %0\n}\n",
       "line 6: instruction after the terminator"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  br %0, bb1, bb1\nbb1:\n  ret %0\n}\n",
       "br with two identical targets"},
      // Value and location numbers are digits only, at most 2^20, and never truncated.
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  ret %4294967296\n}\n",
       "line 5: ret needs 1 value operands"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  ret %-0\n}\n",
       "line 5: ret needs 1 value operands"},
      {"shader\nfunction @f(1) {\nbb0:\n  %1048577 = input 0\n  ret %1048577\n}\n",
       "line 4: expected a value number (0..1048575)"},
      {"shader\nfunction @f(1) {\nbb0:\n  %1048576 = input 0\n  ret %1048576\n}\n",
       "line 4: expected a value number (0..1048575)"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0:r5x = input 0\n  ret %0\n}\n",
       "line 4: expected ':rN' or ':sN' after %0"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0:r = input 0\n  ret %0\n}\n",
       "line 4: expected ':rN' or ':sN' after %0"},
      // Sparse huge numbers would cost a table slot each: bounded per shader, not per function.
      {"shader\nfunction @f(0) {\nbb0:\n  %1048000 = const 1\n  ret %1048000\n}\n"
       "function @g(0) {\nbb0:\n  %1000 = const 1\n  ret %1000\n}\n",
       "line 9: %1000: value numbers in this shader need more than 1048576 table slots"},
      // A phi names each predecessor once, and only predecessors.
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  br %0, bb1, bb2\nbb1:\n  jmp bb2\n"
       "bb2:\n  %2 = phi [%0, bb0], [%0, bb0]\n  ret %2\n}\n",
       "phi %2 names bb0 twice"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  br %0, bb1, bb2\nbb1:\n  jmp bb2\n"
       "bb2:\n  %2 = phi [%0, bb1], [%0, bb2]\n  ret %2\n}\n",
       "line 9: phi %2 names bb2, which is not a predecessor of bb2"},
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  br %0, bb1, bb2\nbb1:\n  jmp bb2\n"
       "bb2:\n  %2 = phi [%0, bb1], [%0, bb1]\n  ret %2\n}\n",
       "phi %2 has no operand for predecessor bb0"},
      // A uniform is read-only: a store to one is refused (loads of it are fine).
      {"shader\nsymbol @u uniform 4\nfunction @f(1) {\nbb0:\n  %0 = input 0\n"
       "  %1 = load @u, %0\n  store @u, %0, %1\n  ret %1\n}\n",
       "@f: bb0: store to uniform @u (uniforms are read-only)"},
      // A phi reads a value from each incoming edge: with no edge it has nothing to read.
      {"shader\nfunction @f(0) {\nbb0:\n  %0 = phi\n  %1 = add %0, %0\n  ret %1\n}\n",
       "bb0: phi %0 in a block with no predecessors"},
      // Stray text between functions is shown (it was "got ''").
      {"shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  ret %0\n}\n}\n",
       "line 7: expected 'symbol' or 'function', got '}'"},
      // Blocks are named by the input's labels; the SSA check's bbN (the N-th label) is
      // followed by the label it stands for where that differs.
      {"shader\nfunction @f(1) {\nentry:\n  %0 = input 0\n  br %0, then, else\nthen:\n"
       "  %1 = const 1\n  jmp merge\n  %2 = const 2\nelse:\n  jmp merge\nmerge:\n  ret %0\n}\n",
       "line 9: instruction after the terminator of then"},
      {"shader\nfunction @f(1) {\nentry:\n  %0 = input 0\n  br %0, then, else\nthen:\n"
       "  %1 = const 1\n  jmp merge\nelse:\n  jmp merge\nmerge:\n  %2 = phi [%1, then], [%1, "
       "else]\n"
       "  ret %2\n}\n",
       "lines 2-14: @f: bb3: %1 does not dominate its use by phi (bb3 is 'merge')"},
      {"shader\nfunction @f(1) {\nbb1:\n  %0 = input 0\n  jmp bb0\nbb0:\n  %1 = const 1\n"
       "  %2 = phi [%0, bb1]\n  ret %2\n}\n",
       "lines 2-10: @f: bb1: phi %2 after a non-phi instruction (bb1 is 'bb0')"},
  };
  for (const BadInput &c : cases) {
    Shader<A> shader{A()};
    Diagnostic d = parse(c.text, shader);
    EXPECT_FALSE(d.ok) << c.text;
    EXPECT_NE(std::string(d.message).find(c.message), std::string::npos)
        << "got: " << d.message << "\nwant: " << c.message;
  }
}

// A name of any length is cut in messages, so the reason after it survives.
TEST(CompilerBackendText, ALongNameKeepsTheReasonInTheMessage) {
  const std::string name(200, 'f');
  const std::string cut = std::string(kShownNameBytes, 'f') + "...";
  struct Case {
    std::string text;
    std::string message;
  };
  const Case cases[] = {
      {"shader\nfunction @" + name + "(1) {\nbb0:\n  %0 = input 0\n  br %0, bb1, bb2\nbb1:\n" +
           "  %1 = const 1\n  jmp bb2\nbb2:\n  %2 = add %1, %0\n  ret %2\n}\n",
       "lines 2-12: @" + cut + ": bb2: %1 does not dominate its use by add"},
      {"shader\nfunction @" + name + "(0) {\nbb0:\n  %0 = const 1\n  ret %0\n}\nfunction @" + name +
           "(0) {\n",
       "line 7: function @" + cut + " defined twice"},
      {"shader\nfunction @f(0) {\n" + name + ":\n  %0 = const 1\n  ret %0\n" + name + ":\n",
       "line 6: label " + cut + " defined twice"},
  };
  for (const Case &c : cases) {
    Shader<A> shader{A()};
    Diagnostic d = parse(c.text, shader);
    EXPECT_FALSE(d.ok) << c.text;
    EXPECT_EQ(std::string(d.message), c.message);
  }
  // The register verifier's messages start with the name too.
  auto s = parse_or_die("shader\nfunction @" + name +
                        "(1) {\nbb0:\n  %0:r0 = input 0\n  %1:r0 = const 5\n  ret %0\n}\n");
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(*s->functions[0], scratch));
  Diagnostic d = verify_registers(*s->functions[0], 2, scratch);
  EXPECT_EQ(std::string(d.message), "@" + cut + ": bb0: %1 and %0 interfere but share r0");
  // Never half a UTF-8 character: a two-byte character across the cut is dropped whole.
  const std::string accented = std::string(kShownNameBytes - 1, 'f') + "\xc3\xa9tail";
  EXPECT_EQ(std::string(shown(accented).text), std::string(kShownNameBytes - 1, 'f') + "...");
  EXPECT_EQ(std::string(shown("short").text), "short");
  // A control byte is named, a NUL too (it ended the text: "unexpected '' after input").
  EXPECT_EQ(std::string(shown(std::string_view("a\0b\tc", 5)).text), "a\\x00b\\x09c");
  EXPECT_EQ(std::string(shown(std::string(kShownNameBytes - 2, 'h') + '\x01').text),
            std::string(kShownNameBytes - 2, 'h') + "...");
  Shader<A> with_nul{A()};
  const Diagnostic nul = parse(
      std::string("shader\nfunction @f(1) {\nbb0:\n  %0 = input 0") + '\0' + "\n  ret %0\n}\n",
      with_nul);
  EXPECT_EQ(std::string(nul.message), "line 4: unexpected '\\x00' after input");
  EXPECT_EQ(std::string(shown(std::string(kShownNameBytes, 'g')).text),
            std::string(kShownNameBytes, 'g'));
}

// A chain of early exits to one block (a lowered switch): each block's immediate dominator is
// the block before it, the exit's is the entry. The exit's 20,000 predecessors lie along one
// dominator chain; compute_dominance takes them deepest first, so this is linear (in block
// order it was quadratic: 50,000 exits took 4.2 s, here in the parser's check and again below).
TEST(CompilerBackendPasses, DominanceOfAChainOfEarlyExitsToOneBlock) {
  constexpr int kExits = 20000;
  std::string text = "shader\nfunction @ladder(1) {\nbb0:\n  %0 = input 0\n";
  for (int i = 0; i < kExits; ++i) {
    if (i > 0) text += "bb" + std::to_string(i) + ":\n";
    if (i + 1 < kExits)
      text += "  br %0, bb" + std::to_string(i + 1) + ", exit\n";
    else
      text += "  jmp exit\n";
  }
  text += "exit:\n  ret %0\n}\n";
  auto s = parse_or_die(text);
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  ASSERT_EQ(f.blocks.size(), static_cast<std::size_t>(kExits) + 1);
  EXPECT_EQ(f.blocks[0]->idom, nullptr);
  for (int i = 1; i < kExits; ++i) ASSERT_EQ(f.blocks[i]->idom, f.blocks[i - 1]) << "bb" << i;
  EXPECT_EQ(f.blocks[kExits]->idom, f.blocks[0]);
  EXPECT_EQ(f.blocks[kExits]->preds.size(), static_cast<std::size_t>(kExits));
  EXPECT_TRUE(dominates(f.blocks[0], f.blocks[kExits]));
  EXPECT_FALSE(dominates(f.blocks[kExits - 1], f.blocks[kExits]));
}

// Mangled text (lines dropped, duplicated or swapped, characters replaced) never crashes the
// parser: it either parses into valid SSA or reports an error.
TEST(CompilerBackendText, MangledInputNeverCrashes) {
  const std::string text = print(*generated(4, 300));
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  Rng rng(7);
  int accepted = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::vector<std::string> m = lines;
    for (int edits = 1 + rng.below(3); edits > 0; --edits) {
      std::uint32_t k = rng.below(static_cast<std::uint32_t>(m.size()));
      switch (rng.below(4)) {
        case 0:
          m.erase(m.begin() + k);
          break;
        case 1:
          m.insert(m.begin() + k, m[rng.below(static_cast<std::uint32_t>(m.size()))]);
          break;
        case 2:
          std::swap(m[k], m[rng.below(static_cast<std::uint32_t>(m.size()))]);
          break;
        default:
          if (!m[k].empty())
            m[k][rng.below(static_cast<std::uint32_t>(m[k].size()))] =
                "%@[],:=0 9bx-"[rng.below(13)];
          break;
      }
    }
    std::string mangled;
    for (const std::string &l : m) mangled += l + "\n";
    Shader<A> shader{A()};
    Diagnostic d = parse(mangled, shader);
    if (d.ok) {
      ++accepted;
      Scratch scratch;
      for (Function<A> *f : shader.functions) EXPECT_TRUE(verify_ssa(*f, scratch).ok);
    } else {
      EXPECT_NE(d.message[0], '\0');
    }
  }
  EXPECT_LT(accepted, 400);
}

// ---- generator

TEST(CompilerBackendGenerator, SameSeedSameShaderOnEveryAllocator) {
  EXPECT_EQ(print(*generated(5, 800)), print(*generated(5, 800)));
  EXPECT_NE(print(*generated(5, 800)), print(*generated(6, 800)));

  std::pmr::monotonic_buffer_resource upstream;
  arena_static_variant arena(&upstream, &upstream);
  auto a = arena.begin_shader();
  std::string on_arena;
  {
    Shader<decltype(a)> shader(a);
    generate(shader, 5, 800, arena.scratch());
    on_arena = print(shader);
  }
  arena.end_shader();
  EXPECT_EQ(on_arena, print(*generated(5, 800)));
}

TEST(CompilerBackendGenerator, SizeAndShapeAreAsAsked) {
  auto shader = generated(11, 2000);
  std::uint32_t instrs = 0, phis = 0, loads = 0, stores = 0, blocks = 0;
  for (Function<A> *f : shader->functions) {
    blocks += f->blocks.size();
    for (Block<A> *b : f->blocks) {
      for (Instr<A> *i : b->instrs) {
        ++instrs;
        phis += i->op == Op::kPhi;
        loads += i->op == Op::kLoad;
        stores += i->op == Op::kStore;
      }
    }
    Scratch scratch;
    Diagnostic d = verify_ssa(*f, scratch);
    EXPECT_TRUE(d.ok) << d.message;
  }
  EXPECT_EQ(shader->functions.size(), 3u);
  EXPECT_GT(instrs, 1800u);
  EXPECT_LT(instrs, 2800u);
  EXPECT_GT(phis, 20u);
  EXPECT_GT(loads, 50u);
  EXPECT_GT(stores, 20u);
  EXPECT_GT(blocks, 40u);
}

// ---- passes on hand-written IR

// A merge block with thousands of predecessors and a phi over all of them: the parser matches
// labels to predecessors and the SSA check counts edges in linear time, and both stay right.
TEST(CompilerBackendText, AMergeOfManyPredecessors) {
  constexpr int kDepth = 12;  // 4096 leaves jump to one merge block
  std::string text = "shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n";
  const int inner = (1 << kDepth) - 1;  // bb0 .. bb{inner-1} branch, the next 4096 jump
  for (int b = 0; b < inner; ++b) {
    if (b > 0) text += "bb" + std::to_string(b) + ":\n";
    text += "  br %0, bb" + std::to_string(2 * b + 1) + ", bb" + std::to_string(2 * b + 2) + "\n";
  }
  const int merge = 2 * inner + 1;
  std::string phi = "  %1 = phi ";
  for (int b = inner; b < merge; ++b) {
    text += "bb" + std::to_string(b) + ":\n  jmp bb" + std::to_string(merge) + "\n";
    phi += std::string(b > inner ? ", " : "") + "[%0, bb" + std::to_string(b) + "]";
  }
  text += "bb" + std::to_string(merge) + ":\n" + phi + "\n  ret %1\n}\n";
  auto s = parse_or_die(text);
  Function<A> &f = *s->functions[0];
  ASSERT_EQ(f.blocks.back()->preds.size(), std::size_t{1} << kDepth);
  ASSERT_EQ(f.blocks.back()->instrs.front()->operands.size(), std::size_t{1} << kDepth);
  Scratch scratch;
  EXPECT_TRUE(verify_ssa(f, scratch).ok);
  // The edge check both ways, on bb1 (one predecessor, bb0; no phi): its entry dropped, then a
  // stale one added.
  Block<A> *bb1 = f.blocks[1];
  bb1->preds.clear();
  Diagnostic d = verify_ssa(f, scratch);
  EXPECT_NE(std::string(d.message).find("edge bb0 -> bb1 missing from the predecessors"),
            std::string::npos)
      << d.message;
  bb1->preds.push_back(f.blocks[0]);
  bb1->preds.push_back(f.blocks[2]);
  d = verify_ssa(f, scratch);
  EXPECT_NE(std::string(d.message).find("bb1 lists bb2 as a stale predecessor"), std::string::npos)
      << d.message;
}

// An instruction unlinked from its block but left in the value table (a pass that forgot to
// destroy it) is caught, operand or not: its users would print a value the text never defines.
// So is one listed in a block twice.
TEST(CompilerBackendText, AValueInNoBlockOrInTwoIsCaught) {
  const std::string text =
      "shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  %1 = const 5\n  %2 = neg %1\n"
      "  ret %2\n}\n";
  auto s = parse_or_die(text);
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  auto &instrs = f.blocks[0]->instrs;
  Instr<A> *one = instrs[1];
  instrs.erase(instrs.begin() + 1);
  Diagnostic d = verify_ssa(f, scratch);
  EXPECT_NE(std::string(d.message).find("@f: %1 is in the value table but in no block"),
            std::string::npos)
      << d.message;
  instrs.insert(instrs.begin() + 1, one);
  EXPECT_TRUE(verify_ssa(f, scratch).ok);
  instrs.insert(instrs.begin() + 2, one);
  d = verify_ssa(f, scratch);
  EXPECT_NE(std::string(d.message).find("@f: bb0: %1 is in the instruction lists twice"),
            std::string::npos)
      << d.message;
  instrs.erase(instrs.begin() + 2);  // the function deletes each listed instruction once
}

// A use list must name each user as often as its operand slots name the value: one that repeats
// a user and lost another's use has the right length but is caught (it passed, and the next
// replace_all_uses left the lost user reading the old value).
TEST(CompilerBackendText, AUseListThatDoesNotMirrorTheOperandsIsCaught) {
  auto s = parse_or_die(
      "shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  %1 = add %0, %0\n  %2 = neg %0\n"
      "  %3 = add %1, %2\n  ret %3\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  auto &uses = value(f, 0)->uses;
  ASSERT_EQ(uses.size(), 3u);
  const auto original = uses;
  // The line names the first user, by address, whose counts differ.
  const std::string add_twice =
      "@f: %0's use list does not mirror its operand slots: a user (add) is listed 3 times but "
      "names %0 in 2";
  const std::string neg_once =
      "@f: %0's use list does not mirror its operand slots: a user (neg) is listed 0 times but "
      "names %0 in 1";
  for (Instr<A> *&u : uses) u = value(f, 1);  // [%1, %1, %1]: %2's use is gone
  Diagnostic d = verify_ssa(f, scratch);
  EXPECT_TRUE(d.message == add_twice || d.message == neg_once) << d.message;
  for (Instr<A> *&u : uses) u = value(f, 3);  // [%3, %3, %3]: all gone, %3 uses %0 in no slot
  d = verify_ssa(f, scratch);
  EXPECT_NE(std::string(d.message).find("@f: %0's use list does not mirror its operand slots"),
            std::string::npos)
      << d.message;
  uses = original;
  std::reverse(uses.begin(), uses.end());  // the order is free
  d = verify_ssa(f, scratch);
  EXPECT_TRUE(d.ok) << d.message;
}

TEST(CompilerBackendPasses, DominanceOfADiamondInALoop) {
  auto s = parse_or_die(
      "shader\nfunction @f(1) {\n"
      "bb0:\n  %0 = input 0\n  jmp bb1\n"
      "bb1:\n  %1 = phi [%0, bb0], [%5, bb4]\n  br %1, bb2, bb3\n"
      "bb2:\n  %2 = const 1\n  jmp bb4\n"
      "bb3:\n  %3 = const 2\n  jmp bb4\n"
      "bb4:\n  %4 = phi [%2, bb2], [%3, bb3]\n  %5 = sub %1, %4\n  br %5, bb1, bb5\n"
      "bb5:\n  ret %5\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  auto idom = [&](int b) { return f.blocks[b]->idom ? int(f.blocks[b]->idom->index) : -1; };
  EXPECT_EQ(idom(0), -1);
  EXPECT_EQ(idom(1), 0);
  EXPECT_EQ(idom(2), 1);
  EXPECT_EQ(idom(3), 1);
  EXPECT_EQ(idom(4), 1);
  EXPECT_EQ(idom(5), 4);
  EXPECT_TRUE(dominates(f.blocks[1], f.blocks[5]));
  EXPECT_FALSE(dominates(f.blocks[2], f.blocks[4]));
  EXPECT_FALSE(dominates(f.blocks[5], f.blocks[1]));
  EXPECT_EQ(f.rpo.front(), f.blocks[0]);
  EXPECT_EQ(f.rpo.size(), 6u);
}

TEST(CompilerBackendPasses, ConstantFoldingFoldsChainsAndIdentities) {
  auto s = parse_or_die(
      "shader\nfunction @f(1) {\nbb0:\n"
      "  %0 = input 0\n  %1 = const 6\n  %2 = const 7\n  %3 = mul %1, %2\n"  // 42
      "  %4 = const 2\n  %5 = shl %3, %4\n"                                  // 168
      "  %6 = const 0\n  %7 = add %0, %6\n"                                  // mov %0
      "  %8 = sub %0, %0\n"                                                  // 0
      "  %9 = select %4, %5, %0\n"                                           // mov %5
      "  %10 = lt %6, %4\n"                                                  // 1
      "  %11 = const -8\n  %12 = shr %11, %4\n"                              // 0x3ffffffe
      "  %13 = add %7, %9\n  %14 = add %13, %8\n  %15 = add %14, %10\n  %16 = xor %15, %12\n"
      "  ret %16\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  EXPECT_GE(constant_fold(f, scratch), 7u);
  EXPECT_EQ(value(f, 3)->op, Op::kConst);
  EXPECT_EQ(value(f, 3)->imm, 42);
  EXPECT_EQ(value(f, 5)->imm, 168);
  EXPECT_EQ(value(f, 7)->op, Op::kMov);
  EXPECT_EQ(value(f, 7)->operands[0], value(f, 0));
  EXPECT_EQ(value(f, 8)->op, Op::kConst);
  EXPECT_EQ(value(f, 8)->imm, 0);
  EXPECT_EQ(value(f, 9)->op, Op::kConst);  // select → mov %5 → folded again
  EXPECT_EQ(value(f, 9)->imm, 168);
  EXPECT_EQ(value(f, 10)->imm, 1);
  EXPECT_EQ(value(f, 12)->imm, 0x3ffffffe);
  EXPECT_EQ(value(f, 13)->op, Op::kAdd);  // %0 is unknown
  EXPECT_TRUE(verify_ssa(f, scratch).ok);
  // The operands' use lists followed the rewrites.
  EXPECT_TRUE(value(f, 1)->uses.empty());
}

TEST(CompilerBackendPasses, CopyPropagationSeesThroughCopiesAndTrivialPhis) {
  auto s = parse_or_die(
      "shader\nfunction @f(1) {\n"
      "bb0:\n  %0 = input 0\n  %1 = mov %0\n  %2 = mov %1\n  jmp bb1\n"
      "bb1:\n  %3 = phi [%2, bb0], [%3, bb2]\n  %4 = lt %3, %2\n  br %4, bb2, bb3\n"
      "bb2:\n  jmp bb1\n"
      "bb3:\n  ret %3\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  EXPECT_EQ(copy_propagate(f, scratch), 3u);
  EXPECT_EQ(value(f, 4)->operands[0], value(f, 0));
  EXPECT_EQ(value(f, 4)->operands[1], value(f, 0));
  EXPECT_EQ(f.blocks[3]->terminator()->operands[0], value(f, 0));
  EXPECT_TRUE(value(f, 1)->uses.empty() || value(f, 1)->uses[0] == value(f, 2));
  EXPECT_TRUE(verify_ssa(f, scratch).ok);
}

TEST(CompilerBackendPasses, DeadCodeEliminationRemovesDeadValuesAndDeadLoopPhis) {
  auto s = parse_or_die(
      "shader\nsymbol @b buffer 4\nfunction @f(1) {\n"
      "bb0:\n  %0 = input 0\n  %1 = const 1\n  %2 = add %0, %1\n  %3 = mul %2, %2\n"
      "  %4 = load @b, %0\n  store @b, %0, %2\n  jmp bb1\n"
      "bb1:\n  %5 = phi [%1, bb0], [%6, bb1]\n  %6 = add %5, %1\n  %7 = lt %0, %1\n"
      "  br %7, bb1, bb2\n"
      "bb2:\n  ret %0\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  EXPECT_EQ(eliminate_dead_code(f, scratch), 4u);  // %3, %4 and the dead cycle %5, %6
  for (std::uint32_t id : {3u, 4u, 5u, 6u}) EXPECT_EQ(f.values[id], nullptr) << id;
  for (std::uint32_t id : {0u, 1u, 2u, 7u}) EXPECT_NE(f.values[id], nullptr) << id;
  EXPECT_EQ(value(f, 1)->uses.size(), 2u);  // %2 and %7 only
  EXPECT_TRUE(verify_ssa(f, scratch).ok);
  EXPECT_NE(print(*s).find("store @b, %0, %2"), std::string::npos);
}

TEST(CompilerBackendPasses, GvnMergesOnlyDominatingEqualExpressions) {
  auto t = parse_or_die(
      "shader\nsymbol @b buffer 4\nfunction @f(2) {\n"
      "bb0:\n  %0 = input 0\n  %1 = input 1\n  %2 = add %0, %1\n  %3 = add %1, %0\n"
      "  %4 = sub %0, %1\n  %5 = sub %1, %0\n  %6 = load @b, %0\n  %7 = load @b, %0\n"
      "  br %2, bb1, bb2\n"
      "bb1:\n  %8 = mul %2, %4\n  %9 = add %0, %1\n  store @b, %9, %8\n  jmp bb3\n"
      "bb2:\n  %10 = mul %2, %4\n  store @b, %10, %5\n  jmp bb3\n"
      "bb3:\n  %12 = phi [%8, bb1], [%10, bb2]\n  %11 = mul %3, %4\n"
      "  %13 = add %11, %12\n  %14 = add %6, %7\n  %15 = add %13, %14\n  %16 = const 3\n"
      "  %17 = const 3\n  %18 = add %15, %17\n  %19 = add %18, %16\n  ret %19\n}\n");
  Function<A> &f = *t->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  EXPECT_EQ(value_number(f, scratch), 3u);
  EXPECT_TRUE(value(f, 3)->uses.empty());   // add is commutative: %3 -> %2
  EXPECT_FALSE(value(f, 5)->uses.empty());  // sub is not
  EXPECT_FALSE(value(f, 7)->uses.empty());  // loads are not merged
  EXPECT_TRUE(value(f, 9)->uses.empty());   // bb0 dominates bb1: %9 -> %2
  EXPECT_TRUE(value(f, 17)->uses.empty());  // equal constants: %17 -> %16
  // %8 and %10 sit in sibling blocks and neither dominates bb3: nothing merges with them.
  EXPECT_FALSE(value(f, 8)->uses.empty());
  EXPECT_FALSE(value(f, 10)->uses.empty());
  EXPECT_FALSE(value(f, 11)->uses.empty());
  EXPECT_EQ(value(f, 11)->operands[0], value(f, 2));  // its operand %3 was renamed
  Diagnostic d = verify_ssa(f, scratch);
  EXPECT_TRUE(d.ok) << d.message;
}

TEST(CompilerBackendPasses, OptimisationsKeepTheMeaningOfGeneratedShaders) {
  int finished = 0;
  std::size_t stores = 0;
  for (std::uint64_t seed = 1; seed <= 25; ++seed) {
    auto original = generated(seed, 500);
    auto optimised = generated(seed, 500);
    Scratch scratch;
    CompileOptions options;
    options.verify_ssa_after_each_pass = true;
    CompileResult r = compile_shader(*optimised, scratch, options, nullptr);
    ASSERT_TRUE(r.error.ok) << "seed " << seed << ": " << r.error.message;
    EXPECT_LT(r.instructions_out, r.instructions_in);
    for (std::size_t k = 0; k < original->functions.size(); ++k) {
      const Function<A> &f0 = *original->functions[k];
      const Function<A> &f1 = *optimised->functions[k];
      std::vector<std::int32_t> args;
      for (std::uint32_t p = 0; p < f0.num_params; ++p) args.push_back(int(seed * 7 + p * 3) - 9);
      Execution e0 = execute(*original, f0, args, 20000);
      Execution e1 = execute(*optimised, f1, args, 20000);
      EXPECT_EQ(e0.trace, e1.trace) << "seed " << seed << " @" << f0.name;
      EXPECT_EQ(e0.stores, e1.stores) << "seed " << seed << " @" << f0.name;
      EXPECT_EQ(e0.finished, e1.finished);
      if (e0.finished) {
        ++finished;
        EXPECT_EQ(e0.result, e1.result) << "seed " << seed << " @" << f0.name;
      }
      stores += e0.stores.size() / 3;
    }
  }
  EXPECT_GT(finished, 10);  // the comparison covers whole runs, not only prefixes
  EXPECT_GT(stores, 100u);
}

// ---- register allocation

TEST(CompilerBackendRegalloc, VerifierAcceptsEveryAllocationAtEveryPressure) {
  std::map<std::uint32_t, std::uint32_t> spilled;  // registers -> spills over all seeds
  for (std::uint32_t regs : {1u, 2u, 3u, 8u, 16u, 64u}) {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
      auto shader = generated(seed * 31, 700);
      Scratch scratch;
      CompileOptions options;
      options.num_registers = regs;
      options.check_liveness = true;
      CompileResult r = compile_shader(*shader, scratch, options, nullptr);  // verifies
      ASSERT_TRUE(r.error.ok) << regs << " registers, seed " << seed << ": " << r.error.message;
      spilled[regs] += r.spilled;
    }
  }
  EXPECT_GT(spilled[1], spilled[3]);
  EXPECT_GT(spilled[3], spilled[16]);
  EXPECT_GE(spilled[16], spilled[64]);
}

TEST(CompilerBackendRegalloc, VerifierCatchesInterferingValuesInOneRegister) {
  auto s = parse_or_die(
      "shader\nfunction @f(2) {\nbb0:\n  %0:r0 = input 0\n  %1:r1 = input 1\n"
      "  %2:r0 = add %0, %1\n  ret %2\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  EXPECT_TRUE(verify_registers(f, 2, scratch).ok);  // %0 dies at %2: r0 may be reused
  EXPECT_TRUE(verify_registers(f, 1u << 31, scratch).ok) << "a count past INT32_MAX";
  value(f, 1)->loc = 0;  // %0 and %1 are both live at %1
  Diagnostic d = verify_registers(f, 2, scratch);
  EXPECT_FALSE(d.ok);
  EXPECT_NE(std::string(d.message).find("%1 and %0 interfere but share r0"), std::string::npos)
      << d.message;
  value(f, 1)->loc = 5;
  d = verify_registers(f, 2, scratch);
  EXPECT_NE(std::string(d.message).find("beyond 2 registers"), std::string::npos) << d.message;
  value(f, 1)->loc = kNoLoc;
  d = verify_registers(f, 2, scratch);
  EXPECT_NE(std::string(d.message).find("%1 has no register"), std::string::npos) << d.message;
}

// The verifier checks every block whether or not dominance was computed (it walked the
// reverse post-order, empty on a function fresh from the generator, and passed anything).
TEST(CompilerBackendRegalloc, VerifierNeedsNoDominanceInformation) {
  auto s = generated(3, 200);
  Function<A> &f = *s->functions[0];
  ASSERT_TRUE(f.rpo.empty());
  for (Instr<A> *v : f.values) {
    if (v != nullptr) v->loc = 0;
  }
  Scratch scratch;
  Diagnostic d = verify_registers(f, 16, scratch);
  EXPECT_FALSE(d.ok);
  EXPECT_NE(std::string(d.message).find("interfere but share r0"), std::string::npos) << d.message;
}

TEST(CompilerBackendRegalloc, VerifierCatchesADeadDefinitionClobberingALiveValue) {
  auto s = parse_or_die(
      "shader\nfunction @f(1) {\nbb0:\n  %0:r0 = input 0\n  %1:r0 = const 5\n  ret %0\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  Diagnostic d = verify_registers(f, 2, scratch);
  EXPECT_NE(std::string(d.message).find("%1 and %0 interfere but share r0"), std::string::npos)
      << d.message;
}

// Every pair of interfering values, found by brute force: each definition against everything
// live after it.
std::set<std::pair<std::uint32_t, std::uint32_t>> interfering_pairs(Function<A> &f,
                                                                    Scratch &scratch) {
  auto live = compute_liveness(f, scratch);
  std::set<std::pair<std::uint32_t, std::uint32_t>> clashes;
  for (Block<A> *b : f.blocks) {
    std::set<std::uint32_t> now(live.live_out[b->index].begin(), live.live_out[b->index].end());
    for (std::size_t k = b->instrs.size(); k-- > 0;) {
      Instr<A> *i = b->instrs[k];
      if (i->op == Op::kPhi) {
        for (Instr<A> *j : b->instrs) {
          if (j->op == Op::kPhi) now.insert(j->id);
        }
      }
      if (i->has_def()) {
        for (std::uint32_t o : now) {
          if (o != i->id) clashes.insert({std::min(o, i->id), std::max(o, i->id)});
        }
      }
      if (i->op == Op::kPhi) continue;
      now.erase(i->id);
      for (Instr<A> *o : i->operands) now.insert(o->id);
    }
  }
  return clashes;
}

// Every interfering pair is caught when forced into one register.
TEST(CompilerBackendRegalloc, VerifierFindsEveryInjectedClash) {
  auto shader = generated(3, 900);
  Scratch scratch;
  CompileOptions options;
  options.num_registers = 64;
  ASSERT_TRUE(compile_shader(*shader, scratch, options, nullptr).error.ok);
  Function<A> &f = *shader->functions[0];
  auto clashes = interfering_pairs(f, scratch);
  ASSERT_GT(clashes.size(), 500u);
  Rng rng(99);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> all(clashes.begin(), clashes.end());
  for (int trial = 0; trial < 200; ++trial) {
    auto [x, y] = all[rng.below(static_cast<std::uint32_t>(all.size()))];
    std::int32_t saved = f.values[y]->loc;
    f.values[y]->loc = f.values[x]->loc;
    EXPECT_FALSE(verify_registers(f, 64, scratch).ok) << "%" << x << " and %" << y;
    f.values[y]->loc = saved;
  }
  EXPECT_TRUE(verify_registers(f, 64, scratch).ok);
}

// Spill slots are locations like registers: two interfering values in one slot are a clash.
TEST(CompilerBackendRegalloc, VerifierCatchesInterferingValuesInOneSpillSlot) {
  auto s = parse_or_die(
      "shader\nfunction @f(1) {\nbb0:\n  %0:r0 = input 0\n  %1:s0 = const 1\n"
      "  %2:s1 = const 2\n  %3:r1 = add %1, %2\n  %4:s0 = add %3, %0\n  ret %4\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  EXPECT_TRUE(verify_registers(f, 4, scratch).ok);  // %1 dies at %3: s0 may be reused by %4
  value(f, 2)->loc = kFirstSpillLoc;                // %1 and %2 are both live at %3, in s0
  Diagnostic d = verify_registers(f, 4, scratch);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(std::string(d.message), "@f: bb0: %2 and %1 interfere but share s0");
  value(f, 2)->loc = kFirstSpillLoc - 1;
  EXPECT_TRUE(verify_registers(f, 4, scratch).ok);
  value(f, 0)->loc = kFirstSpillLoc - 1;  // %0 is live across %2, which writes s1
  d = verify_registers(f, 4, scratch);
  EXPECT_EQ(std::string(d.message), "@f: bb0: %2 and %0 interfere but share s1");
}

// Compiled code with many spills: every interfering pair of spilled values is caught when
// forced into one slot, and the code as allocated passes.
TEST(CompilerBackendRegalloc, VerifierFindsEveryInjectedSpillSlotClash) {
  auto shader = generated(3, 900);
  Scratch scratch;
  CompileOptions options;
  options.num_registers = 3;
  CompileResult r = compile_shader(*shader, scratch, options, nullptr);
  ASSERT_TRUE(r.error.ok) << r.error.message;
  Function<A> &f = *shader->functions[0];
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spilled;
  for (auto [x, y] : interfering_pairs(f, scratch)) {
    if (f.values[x]->loc < 0 && f.values[y]->loc < 0) spilled.push_back({x, y});
  }
  ASSERT_GT(spilled.size(), 100u);
  Rng rng(7);
  for (int trial = 0; trial < 100; ++trial) {
    auto [x, y] = spilled[rng.below(static_cast<std::uint32_t>(spilled.size()))];
    std::int32_t saved = f.values[y]->loc;
    f.values[y]->loc = f.values[x]->loc;
    Diagnostic d = verify_registers(f, 3, scratch);
    EXPECT_FALSE(d.ok) << "%" << x << " and %" << y;
    EXPECT_NE(std::string(d.message).find("interfere but share s"), std::string::npos) << d.message;
    f.values[y]->loc = saved;
  }
  EXPECT_TRUE(verify_registers(f, 3, scratch).ok);
}

TEST(CompilerBackendRegalloc, VerifierCatchesPhisSharingARegister) {
  auto s = parse_or_die(
      "shader\nfunction @f(1) {\n"
      "bb0:\n  %0:r0 = input 0\n  br %0, bb1, bb2\n"
      "bb1:\n  jmp bb2\n"
      "bb2:\n  %1:r1 = phi [%0, bb0], [%0, bb1]\n  %2:r1 = phi [%0, bb0], [%0, bb1]\n"
      "  %3:r0 = add %1, %2\n  ret %3\n}\n");
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  Diagnostic d = verify_registers(f, 4, scratch);
  EXPECT_FALSE(d.ok);
  EXPECT_NE(std::string(d.message).find("interfere but share r1"), std::string::npos) << d.message;
}

// A counted loop: %3 = phi(%2, %5) is live around it, %0 and %1 through it.
constexpr char kLoopShader[] =
    "shader\nfunction @f(2) {\n"
    "bb0:\n  %0 = input 0\n  %1 = input 1\n  %2 = const 0\n  jmp bb1\n"
    "bb1:\n  %3 = phi [%2, bb0], [%5, bb2]\n  %4 = lt %3, %1\n  br %4, bb2, bb3\n"
    "bb2:\n  %5 = add %3, %0\n  jmp bb1\n"
    "bb3:\n  ret %3\n}\n";

TEST(CompilerBackendRegalloc, LivenessOfALoop) {
  auto s = parse_or_die(kLoopShader);
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  auto live = compute_liveness(f, scratch);
  auto set = [](const auto &s) { return std::set<std::uint32_t>(s.begin(), s.end()); };
  EXPECT_EQ(set(live.live_out[0]), (std::set<std::uint32_t>{0, 1, 2}));
  EXPECT_EQ(set(live.live_in[1]), (std::set<std::uint32_t>{0, 1}));  // not the phi %3
  EXPECT_EQ(set(live.live_out[1]), (std::set<std::uint32_t>{0, 1, 3}));
  EXPECT_EQ(set(live.live_in[2]), (std::set<std::uint32_t>{0, 1, 3}));
  EXPECT_EQ(set(live.live_out[2]), (std::set<std::uint32_t>{0, 1, 5}));
  EXPECT_EQ(set(live.live_in[3]), (std::set<std::uint32_t>{3}));
  EXPECT_TRUE(live.live_out[3].empty());
}

// CompileOptions::num_registers outside 1..64 is refused with one message, before any pass.
TEST(CompilerBackendRegalloc, RegisterCountOutOfRangeIsRefused) {
  for (std::uint32_t regs : {0u, 65u, 1000u}) {
    auto shader = generated(1, 100);
    const std::string before = print(*shader);
    Scratch scratch;
    CompileOptions options;
    options.num_registers = regs;
    CompileResult r = compile_shader(*shader, scratch, options, nullptr);
    EXPECT_FALSE(r.error.ok) << regs;
    EXPECT_EQ(std::string(r.error.message),
              "num_registers is " + std::to_string(regs) + ", must be 1..64");
    EXPECT_EQ(print(*shader), before);  // nothing ran
  }
  for (std::uint32_t regs : {1u, 64u}) {
    auto shader = generated(1, 100);
    Scratch scratch;
    CompileOptions options;
    options.num_registers = regs;
    CompileResult r = compile_shader(*shader, scratch, options, nullptr);
    EXPECT_TRUE(r.error.ok) << regs << ": " << r.error.message;
  }
}

// The data-flow fixpoint of liveness_check.h agrees with compute_liveness on generated shaders,
// as generated and as the allocator sees them (check_liveness runs inside compile_shader).
TEST(CompilerBackendRegalloc, DataflowLivenessAgreesWithComputeLiveness) {
  auto set = [](const auto &s) { return std::set<std::uint32_t>(s.begin(), s.end()); };
  std::size_t pairs = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    auto shader = generated(seed, 600);
    Scratch scratch;
    for (Function<A> *f : shader->functions) {
      ASSERT_TRUE(compute_dominance(*f, scratch));
      auto live = compute_liveness(*f, scratch);
      auto reference = compute_liveness_by_dataflow(*f, scratch);
      for (std::size_t b = 0; b < f->blocks.size(); ++b) {
        EXPECT_EQ(set(live.live_in[b]), set(reference.live_in[b])) << "seed " << seed;
        EXPECT_EQ(set(live.live_out[b]), set(reference.live_out[b])) << "seed " << seed;
        pairs += live.live_in[b].size() + live.live_out[b].size();
      }
    }
    CompileOptions options;
    options.num_registers = 1 + static_cast<std::uint32_t>(seed % 16);
    options.check_liveness = true;
    CompileResult r = compile_shader(*shader, scratch, options, nullptr);
    EXPECT_TRUE(r.error.ok) << "seed " << seed << ": " << r.error.message;
  }
  EXPECT_GT(pairs, 10000u);
}

// A liveness bug is caught by the data-flow check even where the register verifier, which
// shares compute_liveness with the allocator, cannot see it.
TEST(CompilerBackendRegalloc, LivenessCheckCatchesAWrongLiveness) {
  auto s = parse_or_die(kLoopShader);
  Function<A> &f = *s->functions[0];
  Scratch scratch;
  ASSERT_TRUE(compute_dominance(f, scratch));
  auto live = compute_liveness(f, scratch);
  EXPECT_TRUE(check_liveness(f, live, scratch).ok);
  // The probe's mutation: a phi operand not live-out of its predecessor.
  live.live_out[2].erase(5);
  Diagnostic d = check_liveness(f, live, scratch);
  EXPECT_EQ(std::string(d.message), "@f: bb2: liveness misses %5 live-out (data-flow fixpoint)");
  live.live_out[2].insert(5);
  live.live_in[3].insert(0);  // %0 is dead after the loop
  d = check_liveness(f, live, scratch);
  EXPECT_EQ(std::string(d.message), "@f: bb3: liveness has %0 live-in, the data-flow fixpoint not");
}

// ---- every allocator computes the same thing

TEST(CompilerBackendVariants, SameChecksumForEveryAllocator) {
  RunOptions run;
  run.shaders = 8;
  run.size = 600;
  CompileOptions options;
  std_variant std_v;
  const std::uint64_t expected = compile_shaders(std_v, run, options, nullptr).checksum;

  pmr_variant newdelete(std::pmr::new_delete_resource(), std::pmr::new_delete_resource());
  EXPECT_EQ(compile_shaders(newdelete, run, options, nullptr).checksum, expected);
  monotonic_variant monotonic(std::pmr::new_delete_resource(), std::pmr::new_delete_resource());
  EXPECT_EQ(compile_shaders(monotonic, run, options, nullptr).checksum, expected);
  arena_pmr_variant arena(std::pmr::new_delete_resource(), std::pmr::new_delete_resource());
  EXPECT_EQ(compile_shaders(arena, run, options, nullptr).checksum, expected);
  arena_static_variant arena_static(std::pmr::new_delete_resource(),
                                    std::pmr::new_delete_resource());
  PassTimes times;
  RunResult r = compile_shaders(arena_static, run, options, &times);
  EXPECT_EQ(r.checksum, expected);
  EXPECT_GT(times.ns[static_cast<int>(Pass::kRegalloc)], 0u);

  run.seed = 2;
  EXPECT_NE(compile_shaders(std_v, run, options, nullptr).checksum, expected);
}

TEST(CompilerBackendVariants, ArenaScratchIsPoppedAfterEveryPass) {
  std::pmr::monotonic_buffer_resource upstream;
  arena_static_variant v(&upstream, &upstream);
  RunOptions run;
  run.shaders = 3;
  run.size = 800;
  ASSERT_TRUE(compile_shaders(v, run, CompileOptions(), nullptr).error.ok);
  EXPECT_EQ(v.scratch_arena().stats().bytes_allocated, 0u);
  EXPECT_GT(v.scratch_arena().stats().bytes_reserved, 0u);  // kept for the next shader
  EXPECT_EQ(v.ir_arena().stats().bytes_reserved, 0u);       // released with each shader
}

// A Scratch over an arena that watches the scopes: every outermost scope (one per pass) must
// start with nothing allocated — the previous pass popped all of its memory — and end back
// there.
class scope_checking_scratch {
 public:
  using alloc_type = mesa::arena_allocator<std::byte>;
  struct marker {
    mesa::arena_mark inner;
    int depth;
  };

  explicit scope_checking_scratch(mesa::arena_resource *arena) : arena_(arena) {}
  alloc_type alloc() const { return alloc_type(arena_); }
  marker mark() {
    if (depth_ == 0) {
      ++passes;
      if (arena_->stats().bytes_allocated != 0) ++dirty_starts;
    }
    return {arena_->mark(), depth_++};
  }
  void rewind(const marker &m) {
    if (m.depth == 0 && arena_->stats().bytes_allocated > most_used) {
      most_used = arena_->stats().bytes_allocated;
    }
    arena_->rewind(m.inner);
    depth_ = m.depth;
    if (depth_ == 0 && arena_->stats().bytes_allocated != 0) ++dirty_ends;
  }

  int passes = 0, dirty_starts = 0, dirty_ends = 0;
  std::size_t most_used = 0;

 private:
  mesa::arena_resource *arena_;
  int depth_ = 0;
};

TEST(CompilerBackendVariants, EachPassPopsItsScratchBeforeTheNext) {
  mesa::arena_resource ir_arena(std::pmr::new_delete_resource());
  mesa::arena_resource scratch_arena(std::pmr::new_delete_resource());
  scope_checking_scratch scratch(&scratch_arena);
  using IrAlloc = mesa::arena_allocator<std::byte>;
  Shader<IrAlloc> shader{IrAlloc(&ir_arena)};
  generate(shader, 5, 1500, scratch);
  const int generate_scopes = scratch.passes;
  CompileOptions options;
  options.verify_ssa_after_each_pass = true;  // a scope of its own after every pass too
  CompileResult r = compile_shader(shader, scratch, options, nullptr);
  ASSERT_TRUE(r.error.ok) << r.error.message;
  const int functions = static_cast<int>(shader.functions.size());
  // dominance, fold, copies, GVN, DCE, liveness+regalloc, verify; SSA checks after four passes.
  EXPECT_EQ(scratch.passes - generate_scopes, functions * (7 + 4));
  EXPECT_EQ(scratch.dirty_starts, 0);
  EXPECT_EQ(scratch.dirty_ends, 0);
  EXPECT_GT(scratch.most_used, 10'000u);  // the passes did use scratch memory
}

// ---- out of memory: the fault loop over every allocation point

// The pass an "out of memory in <pass>" message names, or "" if it names none.
std::string pass_named_in(const char *message) {
  static constexpr char kMarker[] = "out of memory in ";
  const char *at = std::strstr(message, kMarker);
  return at == nullptr ? std::string() : std::string(at + sizeof(kMarker) - 1);
}

// For each n, the n-th allocation of a two-shader compile fails (fault_resource::fail_nth under
// both the IR and the scratch memory; with `for_good`, fail_from: that one and every one after,
// since an arena asks again for a smaller block when one is refused). The compile must come back
// with "out of memory in <pass>" instead of throwing, free every byte (the tracker under the
// fault is back to zero once the variant is gone), and leave the variant usable: the next
// compile, with no failure, gives the reference checksum. Returns the passes the messages named.
template <class Variant>
std::set<std::string> fail_each_allocation(const char *name,
                                           const CompileOptions &options = CompileOptions(),
                                           bool for_good = false) {
  SCOPED_TRACE(name);
  RunOptions run;
  run.shaders = 2;
  run.size = 150;
  run.seed = 11;
  std_variant reference_variant;
  const RunResult reference = compile_shaders(reference_variant, run, options, nullptr);
  EXPECT_TRUE(reference.error.ok) << reference.error.message;

  mesa::tracking_resource heap(std::pmr::new_delete_resource(), "heap");
  mesa::fault_resource fault(&heap);
  std::uint64_t attempts = 0;
  {
    Variant v(&fault, &fault);
    const std::uint64_t before = fault.attempts();
    EXPECT_EQ(compile_shaders(v, run, options, nullptr).checksum, reference.checksum);
    attempts = fault.attempts() - before;
  }
  EXPECT_GT(attempts, 3u);
  std::set<std::string> passes;
  for (std::uint64_t n = 0; n < attempts; ++n) {
    {
      Variant v(&fault, &fault);
      const std::uint64_t failures = fault.failures();
      if (for_good) {
        fault.fail_from(n);
      } else {
        fault.fail_nth(n);
      }
      const RunResult r = compile_shaders(v, run, options, nullptr);
      fault.fail_none();
      if (for_good) {
        EXPECT_GT(fault.failures(), failures) << "allocation " << n;
      } else {
        EXPECT_EQ(fault.failures(), failures + 1) << "allocation " << n;
      }
      EXPECT_FALSE(r.error.ok) << "allocation " << n;
      const std::string pass = pass_named_in(r.error.message);
      EXPECT_NE(pass, "") << "allocation " << n << ": " << r.error.message;
      passes.insert(pass);
      const RunResult again = compile_shaders(v, run, options, nullptr);
      EXPECT_TRUE(again.error.ok) << "after allocation " << n << ": " << again.error.message;
      EXPECT_EQ(again.checksum, reference.checksum) << "after allocation " << n;
    }
    EXPECT_EQ(heap.stats().bytes_in_use, 0u) << "leaked after a failure at allocation " << n;
    if (::testing::Test::HasFailure()) break;
  }
  return passes;
}

// Every pass allocates per object on polymorphic_allocator over new/delete, and the shader is
// destroyed object by object: a failure anywhere must leave nothing half-owned.
TEST(CompilerBackendOutOfMemory, EveryAllocationPointOnNewDelete) {
  const std::set<std::string> passes = fail_each_allocation<pmr_variant>("pmr_newdelete");
  EXPECT_EQ(passes,
            (std::set<std::string>{"generate", "dominance", "constant_fold", "copy_propagate",
                                   "gvn", "dce", "liveness", "regalloc", "verify"}));
}

// With the SSA check after each pass, a failure inside a check names the check.
TEST(CompilerBackendOutOfMemory, EveryAllocationPointWithSsaChecks) {
  CompileOptions options;
  options.verify_ssa_after_each_pass = true;
  const std::set<std::string> passes = fail_each_allocation<pmr_variant>("checked", options);
  for (const char *check :
       {"the SSA check after constant_fold", "the SSA check after copy_propagate",
        "the SSA check after gvn", "the SSA check after dce"}) {
    EXPECT_EQ(passes.count(check), 1u) << check;
  }
  EXPECT_EQ(passes.size(), 9u + 4u);
}

// On arenas only block requests reach the upstream; a refused one must unwind as cleanly. A
// refused block is asked for again smaller, so the upstream fails from then on.
TEST(CompilerBackendOutOfMemory, EveryUpstreamRequestOfTheArenas) {
  EXPECT_FALSE(fail_each_allocation<arena_pmr_variant>("arena_pmr", {}, true).empty());
  EXPECT_FALSE(fail_each_allocation<arena_static_variant>("arena_static", {}, true).empty());
  EXPECT_FALSE(fail_each_allocation<monotonic_variant>("pmr_monotonic").empty());
}

// The parser builds the same IR: a failure anywhere gives "line N: out of memory", and the
// partial shader is destroyed without a leak.
TEST(CompilerBackendOutOfMemory, ParserReportsOutOfMemoryWithTheLine) {
  const std::string text = print(*generated(3, 120));
  mesa::tracking_resource heap(std::pmr::new_delete_resource(), "heap");
  mesa::fault_resource fault(&heap);
  std::uint64_t attempts = 0;
  {
    Shader<P> shader{P(&fault)};
    const std::uint64_t before = fault.attempts();
    ASSERT_TRUE(parse(text, shader).ok);
    attempts = fault.attempts() - before;
  }
  ASSERT_GT(attempts, 100u);
  for (std::uint64_t n = 0; n < attempts; ++n) {
    {
      Shader<P> shader{P(&fault)};
      fault.fail_nth(n);
      const Diagnostic d = parse(text, shader);
      fault.fail_none();
      EXPECT_FALSE(d.ok) << "allocation " << n;
      EXPECT_NE(std::strstr(d.message, ": out of memory"), nullptr) << d.message;
      EXPECT_EQ(std::strncmp(d.message, "line ", 5), 0) << d.message;
    }
    EXPECT_EQ(heap.stats().bytes_in_use, 0u) << "leaked after a failure at allocation " << n;
    if (::testing::Test::HasFailure()) break;
  }
}

}  // namespace
}  // namespace compiler_backend
