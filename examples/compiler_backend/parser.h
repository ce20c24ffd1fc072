// parser.h — reads the textual form written by printer.h back into a Shader.
//
// What it is for: hand-written IR in tests and the print → parse → print round trip. Bad
// input gives one clear message with the line number ("line 7: unknown opcode 'addd'"),
// never a crash; running out of memory gives one too ("line 7: out of memory"; while a
// function's operands are linked at its closing '}', the line is the instruction's). The
// parsed functions are then checked with verify_ssa(), whose message names the block and
// values, after the function's lines ("lines 2-12: @f: bb2: %1 does not dominate its use").
// verify_ssa calls blocks bbN by their order in the function; where the input labelled a block
// named there otherwise, the message ends with its label: "... (bb2 is 'else')".
//
// What it costs: the IR goes to the shader's allocator; the parser's own bookkeeping (label
// and value tables) uses the default heap, since it is a tool, not part of the compile path.
//
// Example:
//   Shader<A> shader(a);
//   Diagnostic d = parse("shader\nfunction @f(1) {\nbb0:\n  %0 = input 0\n  ret %0\n}\n",
//                        shader);
#ifndef EXAMPLES_COMPILER_BACKEND_PARSER_H_
#define EXAMPLES_COMPILER_BACKEND_PARSER_H_

#include <cctype>
#include <charconv>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "examples/compiler_backend/diagnostic.h"
#include "examples/compiler_backend/ir.h"
#include "examples/compiler_backend/scratch.h"
#include "examples/compiler_backend/verify_ssa.h"

namespace compiler_backend {

namespace internal {

// A cursor over one line.
class line_cursor {
 public:
  explicit line_cursor(std::string_view s) : s_(s) {}

  void skip_space() {
    while (!s_.empty() && (s_[0] == ' ' || s_[0] == '\t' || s_[0] == '\r')) s_.remove_prefix(1);
  }
  bool at_end() {
    skip_space();
    return s_.empty();
  }
  bool eat(char c) {
    skip_space();
    if (s_.empty() || s_[0] != c) return false;
    s_.remove_prefix(1);
    return true;
  }
  // Letters, digits, '_' and '.'.
  std::string_view word() {
    skip_space();
    std::size_t n = 0;
    while (n < s_.size() &&
           (std::isalnum(static_cast<unsigned char>(s_[n])) || s_[n] == '_' || s_[n] == '.')) {
      ++n;
    }
    std::string_view w = s_.substr(0, n);
    s_.remove_prefix(n);
    return w;
  }
  // A value or location number: decimal digits only (no sign), at most kMaxId (a shader's
  // value table has 2^20 slots, so 2^20 - 1 is the highest number that can be used).
  static constexpr std::int64_t kMaxId = (1 << 20) - 1;
  bool id(std::int64_t &out) {
    skip_space();
    if (s_.empty() || !std::isdigit(static_cast<unsigned char>(s_[0]))) return false;
    return number(out) && out <= kMaxId;
  }
  bool number(std::int64_t &out) {
    skip_space();
    auto [end, ec] = std::from_chars(s_.data(), s_.data() + s_.size(), out);
    if (ec != std::errc() || end == s_.data()) return false;
    s_.remove_prefix(end - s_.data());
    return true;
  }
  std::string_view rest() {
    skip_space();
    return s_;
  }

 private:
  std::string_view s_;
};

}  // namespace internal

template <class A>
class Parser {
 public:
  explicit Parser(Shader<A> &shader) : shader_(shader) {}

  // Out of memory (std::bad_alloc from the shader's allocator) is "line N: out of memory"; what
  // was built so far stays owned by the shader.
  Diagnostic parse(std::string_view text) {
    try {
      return parse_lines(text);
    } catch (const std::bad_alloc &) {
      return error("out of memory");
    }
  }

 private:
  Diagnostic parse_lines(std::string_view text) {
    for (Function<A> *f : shader_.functions) function_names_.insert(view(f->name));
    for (Symbol<A> *symbol : shader_.symbols) symbols_.emplace(view(symbol->name), symbol);
    bool seen_header = false;
    while (!text.empty()) {
      std::size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      line_no_ = ++lines_read_;
      std::size_t comment = line.find(';');
      if (comment != std::string_view::npos) line = line.substr(0, comment);
      internal::line_cursor c(line);
      if (c.at_end()) continue;
      Diagnostic d;
      if (!seen_header) {
        if (c.word() != "shader" || !c.at_end()) return error("expected 'shader'");
        seen_header = true;
        continue;
      }
      if (function_ != nullptr) {
        d = parse_body_line(c);
      } else {
        std::string_view w = c.word();
        if (w == "symbol") {
          d = parse_symbol(c);
        } else if (w == "function") {
          d = parse_function_header(c);
        } else {
          return error("expected 'symbol' or 'function', got '%s'",
                       shown(w.empty() ? c.rest() : w).text);
        }
      }
      if (!d.ok) return d;
    }
    if (!seen_header) {
      line_no_ = lines_read_ > 0 ? lines_read_ : 1;  // there is no line 0
      return error("empty input: expected 'shader'");
    }
    if (function_ != nullptr)
      return error("missing '}' at the end of @%s", shown(function_->name).text);
    return {};
  }

  struct pending_instr {
    Instr<A> *instr;
    Block<A> *block;
    std::vector<std::int64_t> operand_ids;
    std::vector<std::string> labels;  // phi predecessors, or br/jmp targets
    int line;
  };

  // "line N: " and the message; the format is checked against the arguments at compile time.
  [[gnu::format(printf, 2, 3)]] Diagnostic error(const char *format, ...) {
    char buf[sizeof(Diagnostic::message)];
    va_list args;
    va_start(args, format);
    std::vsnprintf(buf, sizeof(buf), format, args);
    va_end(args);
    return Diagnostic::error("line %d: %s", line_no_, buf);
  }

  Diagnostic parse_symbol(internal::line_cursor &c) {
    if (!c.eat('@')) return error("expected '@name' after 'symbol'");
    std::string_view name = c.word();
    if (name.empty()) return error("expected a symbol name");
    std::string_view kind = c.word();
    if (kind != "buffer" && kind != "uniform") {
      return error("symbol kind must be 'buffer' or 'uniform', got '%s'", shown(kind).text);
    }
    std::int64_t size;
    if (!c.number(size) || size < 1 || size > (1 << 24)) {
      return error("expected a symbol size between 1 and 16777216");
    }
    if (!c.at_end()) return error("unexpected text after the symbol");
    Symbol<A> *symbol =
        shader_.add_symbol(name, kind == "buffer" ? SymbolKind::kBuffer : SymbolKind::kUniform,
                           static_cast<std::uint32_t>(size));
    if (symbol == nullptr) return error("symbol @%s defined twice", shown(name).text);
    symbols_.emplace(view(symbol->name), symbol);
    return {};
  }

  Diagnostic parse_function_header(internal::line_cursor &c) {
    if (!c.eat('@')) return error("expected '@name' after 'function'");
    std::string_view name = c.word();
    if (name.empty()) return error("expected a function name");
    std::int64_t params;
    if (!c.eat('(') || !c.number(params) || params < 0 || params > 64 || !c.eat(')') ||
        !c.eat('{') || !c.at_end()) {
      return error("expected 'function @name(PARAMS) {'");
    }
    if (function_names_.count(name)) return error("function @%s defined twice", shown(name).text);
    function_ = shader_.add_function(name, static_cast<std::uint32_t>(params));
    function_names_.insert(view(function_->name));
    function_line_ = line_no_;
    block_ = nullptr;
    labels_.clear();
    label_of_.clear();
    values_.clear();
    pending_.clear();
    return {};
  }

  Diagnostic parse_body_line(internal::line_cursor &c) {
    if (c.eat('}')) {
      if (!c.at_end()) return error("unexpected text after '}'");
      return finish_function();
    }
    if (c.eat('%')) return parse_instr(c);
    std::string_view w = c.word();
    if (w.empty()) return error("unexpected '%s'", shown(c.rest()).text);
    if (c.eat(':')) {
      if (!c.at_end()) return error("unexpected text after label %s", shown(w).text);
      std::string label(w);
      if (labels_.count(label)) return error("label %s defined twice", shown(label).text);
      if (block_ != nullptr && !ended_)
        return error("%s does not end with a terminator", shown_label(block_).text);
      block_ = function_->add_block();
      label_of_.push_back(&labels_.emplace(std::move(label), block_).first->first);
      ended_ = false;
      return {};
    }
    return parse_instr_named(c, w, nullptr);
  }

  // After '%': "ID[:rN|:sN] = op ...".
  Diagnostic parse_instr(internal::line_cursor &c) {
    std::int64_t id;
    if (!c.id(id)) {
      return error("expected a value number (0..%lld) after '%%'",
                   (long long)internal::line_cursor::kMaxId);
    }
    if (values_in_shader_ + id + 1 > kMaxValuesPerShader) {
      return error("%%%lld: value numbers in this shader need more than %lld table slots in total",
                   (long long)id, (long long)kMaxValuesPerShader);
    }
    std::int32_t loc = kNoLoc;
    if (c.eat(':')) {
      std::string_view l = c.word();
      std::int64_t n = -1;
      internal::line_cursor number(l.empty() ? l : l.substr(1));
      if (l.empty() || (l[0] != 'r' && l[0] != 's') || !number.id(n) || !number.at_end())
        return error("expected ':rN' or ':sN' after %%%lld", (long long)id);
      loc = l[0] == 'r' ? static_cast<std::int32_t>(n)
                        : kFirstSpillLoc - static_cast<std::int32_t>(n);
    }
    if (!c.eat('=')) return error("expected '=' after %%%lld", (long long)id);
    std::string_view opname = c.word();
    std::int64_t def[2] = {id, loc};
    return parse_instr_named(c, opname, def);
  }

  Diagnostic parse_instr_named(internal::line_cursor &c, std::string_view opname,
                               const std::int64_t *def) {
    if (block_ == nullptr) return error("instruction before the first label");
    if (ended_) return error("instruction after the terminator of %s", shown_label(block_).text);
    int opi = 0;
    while (opi < kNumOps && opname != op_info(static_cast<Op>(opi)).name) ++opi;
    if (opi == kNumOps) return error("unknown opcode '%s'", shown(opname).text);
    Op op = static_cast<Op>(opi);
    const OpInfo &info = op_info(op);
    if (info.has_def != (def != nullptr)) {
      return error(info.has_def ? "%s needs a result: '%%N = %s ...'" : "%s has no result",
                   info.name, info.name);
    }
    std::uint32_t id = def ? static_cast<std::uint32_t>(def[0]) : kNoValue;
    if (def && values_.count(id)) return error("%%%u defined twice", id);
    pending_instr p{nullptr, block_, {}, {}, line_no_};
    Instr<A> *i = nullptr;
    auto make = [&]() {
      block_->instrs.push_back(nullptr);
      i = function_->place(block_, block_->instrs.end() - 1, [&] {
        return def ? function_->make_with_id(op, id)
                   : new_object<Instr<A>>(function_->alloc, function_->alloc, op);
      });
      p.instr = i;
      if (def) {
        i->loc = static_cast<std::int32_t>(def[1]);
        values_.emplace(id, i);
      }
    };
    bool first = true;
    auto comma = [&]() {
      bool ok = first || c.eat(',');
      first = false;
      return ok;
    };
    auto value = [&](std::int64_t &out) { return c.eat('%') && c.id(out); };
    Symbol<A> *symbol = nullptr;
    if (info.has_symbol) {
      if (!c.eat('@')) return error("%s needs '@symbol'", info.name);
      std::string_view name = c.word();
      auto known = symbols_.find(name);
      if (known == symbols_.end()) return error("unknown symbol @%s", shown(name).text);
      symbol = known->second;
      first = false;
    }
    std::int64_t imm = 0;
    if (op == Op::kConst || op == Op::kInput) {
      if (!c.number(imm) || imm < INT32_MIN || imm > UINT32_MAX) {
        return error("%s needs a 32-bit integer", info.name);
      }
      if (op == Op::kInput && (imm < 0 || imm >= function_->num_params)) {
        return error("input %lld out of range: @%s has %u parameters", (long long)imm,
                     shown(function_->name).text, function_->num_params);
      }
    } else if (op == Op::kPhi) {
      while (!c.at_end()) {
        std::int64_t v;
        if (!comma() || !c.eat('[') || !value(v) || !c.eat(',')) {
          return error("expected '[%%value, label]' in phi");
        }
        std::string_view label = c.word();
        if (label.empty() || !c.eat(']')) return error("expected '[%%value, label]' in phi");
        p.operand_ids.push_back(v);
        p.labels.emplace_back(label);
      }
    } else {
      for (int k = 0; k < info.num_operands; ++k) {
        std::int64_t v;
        if (!comma() || !value(v)) {
          return error("%s needs %d value operands", info.name, info.num_operands);
        }
        p.operand_ids.push_back(v);
      }
      int targets = op == Op::kBr ? 2 : op == Op::kJmp ? 1 : 0;
      for (int k = 0; k < targets; ++k) {
        std::string_view label;
        if (!comma() || (label = c.word()).empty()) {
          return error("%s needs %d target labels", info.name, targets);
        }
        p.labels.emplace_back(label);
      }
    }
    if (!c.at_end()) {
      return error("unexpected '%s' after %s", shown(c.rest()).text, info.name);
    }
    make();
    i->symbol = symbol;
    i->imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(imm));
    ended_ = info.terminator;
    pending_.push_back(std::move(p));
    return {};
  }

  Diagnostic finish_function() {
    Function<A> &f = *function_;
    function_ = nullptr;
    values_in_shader_ += static_cast<std::int64_t>(f.values.size());
    if (f.blocks.empty()) return error("@%s has no blocks", shown(f.name).text);
    if (!ended_) return error("%s does not end with a terminator", shown_label(block_).text);
    // Edges from the terminators, then the canonical predecessor order.
    for (pending_instr &p : pending_) {
      if (p.instr->op != Op::kBr && p.instr->op != Op::kJmp) continue;
      for (const std::string &label : p.labels) {
        auto it = labels_.find(label);
        if (it == labels_.end()) {
          line_no_ = p.line;
          return error("unknown label %s", shown(label).text);
        }
        p.block->succs.push_back(it->second);
      }
      if (p.block->succs.size() == 2 && p.block->succs[0] == p.block->succs[1]) {
        line_no_ = p.line;
        return error("br with two identical targets");
      }
    }
    for (Block<A> *b : f.blocks) {
      for (Block<A> *s : b->succs) s->preds.push_back(b);
    }
    for (pending_instr &p : pending_) {
      line_no_ = p.line;
      auto lookup = [&](std::int64_t id) -> Instr<A> * {
        auto it = values_.find(static_cast<std::uint32_t>(id));
        return it == values_.end() ? nullptr : it->second;
      };
      if (p.instr->op == Op::kPhi) {
        const auto &preds = p.block->preds;
        if (p.labels.size() != preds.size()) {
          return error("phi %%%u has %zu operands but %s has %zu predecessors", p.instr->id,
                       p.labels.size(), shown_label(p.block).text, preds.size());
        }
        // Each label resolved once, to the operand index its block takes (linear in the
        // operands: a phi of a block with thousands of predecessors must not be quadratic).
        // Entries of earlier phis are told apart by their generation, so nothing is cleared.
        ++phi_generation_;
        if (phi_slots_.size() < f.blocks.size()) phi_slots_.resize(f.blocks.size());
        for (std::size_t k = 0; k < p.labels.size(); ++k) {
          auto it = labels_.find(p.labels[k]);
          if (it == labels_.end()) return error("unknown label %s", shown(p.labels[k]).text);
          phi_slot &slot = phi_slots_[it->second->index];
          slot.operand = slot.generation == phi_generation_ ? kNamedTwice : k;
          slot.generation = phi_generation_;
        }
        for (Block<A> *pred : preds) {
          const phi_slot &slot = phi_slots_[pred->index];
          const std::size_t k = slot.generation == phi_generation_ ? slot.operand : kNoOperand;
          if (k == kNamedTwice) {
            return error("phi %%%u names %s twice", p.instr->id, shown_label(pred).text);
          }
          if (k == kNoOperand) return phi_without_operand(p, pred);
          Instr<A> *v = lookup(p.operand_ids[k]);
          if (v == nullptr) return error("%%%lld is not defined", (long long)p.operand_ids[k]);
          add_operand(p.instr, v);
        }
      } else if (p.instr->op != Op::kJmp) {
        for (std::int64_t id : p.operand_ids) {
          Instr<A> *v = lookup(id);
          if (v == nullptr) return error("%%%lld is not defined", (long long)id);
          add_operand(p.instr, v);
        }
      }
    }
    heap_scratch<std::allocator<std::byte>> scratch;
    Diagnostic d = verify_ssa(f, scratch);
    // verify_ssa names the block and the values, not a line: the message names the function's.
    if (!d.ok) {
      return Diagnostic::error("lines %d-%d: %s%s", function_line_, lines_read_, d.message,
                               labels_in(d.message).c_str());
    }
    return {};
  }

  static std::string_view view(const str<A> &name) { return {name.data(), name.size()}; }

  // The label the input gave block `b`.
  ShownName shown_label(const Block<A> *b) const { return shown(*label_of_[b->index]); }

  // A phi with as many operands as its block has predecessors but none for `pred`: one of its
  // labels names a block that is no predecessor (named first, as the likelier slip), or two
  // name one. Only on this error path are the predecessors marked.
  Diagnostic phi_without_operand(const pending_instr &p, const Block<A> *pred) {
    std::vector<bool> is_pred(label_of_.size());
    for (const Block<A> *b : p.block->preds) is_pred[b->index] = true;
    for (const std::string &label : p.labels) {
      if (!is_pred[labels_.find(label)->second->index]) {
        return error("phi %%%u names %s, which is not a predecessor of %s", p.instr->id,
                     shown(label).text, shown_label(p.block).text);
      }
    }
    return error("phi %%%u has no operand for predecessor %s", p.instr->id, shown_label(pred).text);
  }

  // verify_ssa names blocks by index (bb2: the third label of the function). Where the input
  // labelled a block named in `message` otherwise, this says how: " (bb2 is 'else')".
  std::string labels_in(const char *message) const {
    std::string legend;
    const std::string_view m(message);
    for (std::size_t at = m.find("bb"); at != std::string_view::npos; at = m.find("bb", at + 2)) {
      std::size_t end = at + 2;
      while (end < m.size() && std::isdigit(static_cast<unsigned char>(m[end]))) ++end;
      const bool word_start =
          at == 0 || !(std::isalnum(static_cast<unsigned char>(m[at - 1])) || m[at - 1] == '_' ||
                       m[at - 1] == '.' || m[at - 1] == '@');
      std::uint32_t index = 0;
      if (end == at + 2 || !word_start ||
          std::from_chars(m.data() + at + 2, m.data() + end, index).ec != std::errc()) {
        continue;
      }
      const std::string_view name = m.substr(at, end - at);
      if (index >= label_of_.size() || *label_of_[index] == name) continue;
      const std::string entry = std::string(name) + " is '" + shown(*label_of_[index]).text + "'";
      if (legend.find(entry) != std::string::npos) continue;
      legend += (legend.empty() ? " (" : ", ") + entry;
    }
    return legend.empty() ? legend : legend + ")";
  }

  Shader<A> &shader_;
  Function<A> *function_ = nullptr;
  Block<A> *block_ = nullptr;
  bool ended_ = false;
  int lines_read_ = 0;
  int line_no_ = 0;        // the line errors name: the current one, or a pending instruction's
  int function_line_ = 0;  // the line of the current function's header
  std::unordered_map<std::string, Block<A> *> labels_;
  std::vector<const std::string *> label_of_;  // per block index, its key in labels_
  // The shader's function and symbol names (views of its own copies, which never move).
  std::unordered_set<std::string_view> function_names_;
  std::unordered_map<std::string_view, Symbol<A> *> symbols_;
  std::unordered_map<std::uint32_t, Instr<A> *> values_;
  std::vector<pending_instr> pending_;
  // Per block of the function, the operand the current phi takes from it (or kNamedTwice);
  // valid where generation is phi_generation_.
  static constexpr std::size_t kNoOperand = ~std::size_t{0};
  static constexpr std::size_t kNamedTwice = kNoOperand - 1;
  struct phi_slot {
    std::uint64_t generation = 0;
    std::size_t operand = kNoOperand;
  };
  std::vector<phi_slot> phi_slots_;
  std::uint64_t phi_generation_ = 0;
  // Value-table slots (highest value number + 1) of the functions parsed so far: a function's
  // table has a slot per number up to its highest, so sparse huge numbers would cost memory far
  // beyond the input's size. Bounded per shader.
  static constexpr std::int64_t kMaxValuesPerShader = 1 << 20;
  std::int64_t values_in_shader_ = 0;
};

template <class A>
Diagnostic parse(std::string_view text, Shader<A> &shader) {
  return Parser<A>(shader).parse(text);
}

}  // namespace compiler_backend

#endif  // EXAMPLES_COMPILER_BACKEND_PARSER_H_
