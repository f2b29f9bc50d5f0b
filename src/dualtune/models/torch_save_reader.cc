// A pickle machine for torch.save's data.pkl: the opcodes of protocols 2-4 that can
// appear in a state dict or a training checkpoint (Python's pickletools documents each),
// with the few callables a state dict needs (torch_save_reader.h); every other class is
// kept as an opaque object, reported by name only if the state dict is asked of it.
#include "dualtune/models/torch_save_reader.h"

#include <cstring>
#include <map>
#include <memory>

#include "dualtune/features/zip.h"
#include "dualtune/util/error.h"

namespace dualtune::models {
namespace {

struct Value;
using V = std::shared_ptr<Value>;

struct Value {
  enum Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Storage, Tensor, Object, Mark } kind = None;
  int64_t i = 0;        ///< Int, Bool; Storage: element count
  double f = 0;         ///< Float
  std::string s, s2;    ///< Str: s; Global: module s, name s2; Storage: key s, type s2; Object: class s
  std::vector<V> items;  ///< Tuple, List; Dict: key, value, key, value, ...
  torch::Tensor t;      ///< Tensor
};

V make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}
V make_int(int64_t i) {
  auto v = make(Value::Int);
  v->i = i;
  return v;
}
V make_str(std::string s) {
  auto v = make(Value::Str);
  v->s = std::move(s);
  return v;
}

// torch.<Name>Storage -> dtype (the typed-storage names torch.save still writes).
bool storage_dtype(const std::string& name, torch::Dtype* out) {
  static const std::map<std::string, torch::Dtype> kTypes = {
      {"FloatStorage", torch::kFloat32}, {"DoubleStorage", torch::kFloat64}, {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16}, {"LongStorage", torch::kInt64}, {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16}, {"CharStorage", torch::kInt8}, {"ByteStorage", torch::kUInt8},
      {"BoolStorage", torch::kBool}};
  const auto it = kTypes.find(name);
  if (it == kTypes.end()) return false;
  *out = it->second;
  return true;
}

class Machine {
 public:
  Machine(const std::string& pkl, std::map<std::string, const std::string*> storages, std::string source)
      : p_(pkl), storages_(std::move(storages)), source_(std::move(source)) {}

  V run() {
    while (true) {
      const size_t at = pos_;
      const auto op = static_cast<unsigned char>(byte());
      switch (op) {
        case 0x80: byte(); break;                 // PROTO n
        case 0x95: bytes(8); break;               // FRAME length (protocol 4)
        case '.': return pop();                   // STOP
        case '(': push(make(Value::Mark)); break;  // MARK
        case '0': pop(); break;                   // POP
        case '1': pop_mark(); break;              // POP_MARK
        case '2': push(top()); break;             // DUP
        case 'N': push(make(Value::None)); break;
        case 0x88: case 0x89: {                   // NEWTRUE, NEWFALSE
          auto v = make(Value::Bool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'J': push(make_int(static_cast<int32_t>(le(4)))); break;  // BININT
        case 'K': push(make_int(static_cast<int64_t>(le(1)))); break;  // BININT1
        case 'M': push(make_int(static_cast<int64_t>(le(2)))); break;  // BININT2
        case 0x8a: {                                                    // LONG1 n, n bytes two's complement
          const size_t n = le(1);
          DT_CHECK(n <= 8, source_, ": integer of ", n, " bytes at byte ", at, " of data.pkl is too large");
          uint64_t u = n ? le(n) : 0;
          if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~uint64_t{0} << (8 * n);  // sign-extend
          push(make_int(static_cast<int64_t>(u)));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian double
          uint64_t u = 0;
          for (char c : bytes(8)) u = (u << 8) | static_cast<unsigned char>(c);
          auto v = make(Value::Float);
          std::memcpy(&v->f, &u, sizeof u);
          push(v);
          break;
        }
        case 'X': case 'B': case 'T': push(make_str(bytes(le(4)))); break;  // BINUNICODE, BINBYTES, BINSTRING
        case 0x8c: case 'C': case 'U': push(make_str(bytes(le(1)))); break;  // SHORT_BINUNICODE/BYTES/STRING
        case 0x8d: case 0x8e: push(make_str(bytes(le(8)))); break;          // BINUNICODE8, BINBYTES8
        case 'q': memo_[le(1)] = top(); break;                               // BINPUT
        case 'r': memo_[le(4)] = top(); break;                               // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;                       // MEMOIZE
        case 'h': push(memo(le(1), at)); break;                              // BINGET
        case 'j': push(memo(le(4), at)); break;                              // LONG_BINGET
        case ')': push(make(Value::Tuple)); break;                           // EMPTY_TUPLE
        case 't': push(sequence(Value::Tuple, pop_mark())); break;           // TUPLE
        case 0x85: case 0x86: case 0x87: {                                   // TUPLE1..3
          std::vector<V> items(static_cast<size_t>(op - 0x84));
          for (size_t k = items.size(); k-- > 0;) items[k] = pop();
          push(sequence(Value::Tuple, std::move(items)));
          break;
        }
        case ']': push(make(Value::List)); break;                  // EMPTY_LIST
        case 'l': push(sequence(Value::List, pop_mark())); break;  // LIST
        case 'a': {                                                // APPEND
          auto v = pop();
          top()->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          auto& list = top()->items;
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case '}': push(make(Value::Dict)); break;  // EMPTY_DICT
        case 'd': {                                // DICT
          auto items = pop_mark();
          push(sequence(Value::Dict, std::move(items)));
          break;
        }
        case 's': {  // SETITEM
          auto value = pop();
          auto key = pop();
          set_items(top(), {key, value}, at);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          set_items(top(), items, at);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          auto g = make(Value::Global);
          g->s = line();
          g->s2 = line();
          push(g);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto g = make(Value::Global);
          g->s2 = pop()->s;
          g->s = pop()->s;
          push(g);
          break;
        }
        case 'Q': push(persistent(pop(), at)); break;  // BINPERSID
        case 'R': {                                    // REDUCE callable(*args)
          auto args = pop();
          auto fn = pop();
          push(reduce(fn, args, at));
          break;
        }
        case 0x81: {  // NEWOBJ cls.__new__(cls, *args)
          pop();
          auto cls = pop();
          push(object_of(cls));
          break;
        }
        case 'b': pop(); break;  // BUILD obj.__setstate__(state): state ignored (OrderedDict._metadata)
        default:
          DT_THROW(source_, ": pickle opcode 0x", std::hex, static_cast<int>(op), std::dec, " at byte ", at,
                   " of data.pkl is not one torch.save writes for a state dict; expected a file written by ",
                   "torch.save(model.state_dict(), path)");
      }
    }
  }

 private:
  char byte() {
    DT_CHECK(pos_ < p_.size(), source_, ": data.pkl ends at byte ", pos_, " before its STOP opcode (truncated file?)");
    return p_[pos_++];
  }
  std::string bytes(uint64_t n) {
    DT_CHECK(n <= p_.size() - pos_, source_, ": data.pkl asks for ", n, " bytes at byte ", pos_, " but only ",
             p_.size() - pos_, " remain (truncated file?)");
    std::string s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t le(size_t n) {
    uint64_t u = 0;
    const std::string b = bytes(n);
    for (size_t k = n; k-- > 0;) u = (u << 8) | static_cast<unsigned char>(b[k]);
    return u;
  }
  std::string line() {
    const size_t end = p_.find('\n', pos_);
    DT_CHECK(end != std::string::npos, source_, ": unterminated GLOBAL name at byte ", pos_, " of data.pkl");
    std::string s = p_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  void push(V v) { stack_.push_back(std::move(v)); }
  V& top() {
    DT_CHECK(!stack_.empty(), source_, ": malformed data.pkl (empty pickle stack at byte ", pos_, ")");
    return stack_.back();
  }
  V pop() {
    V v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<V> pop_mark() {
    size_t k = stack_.size();
    while (k > 0 && stack_[k - 1]->kind != Value::Mark) --k;
    DT_CHECK(k > 0, source_, ": malformed data.pkl (no MARK before byte ", pos_, ")");
    std::vector<V> items(stack_.begin() + static_cast<std::ptrdiff_t>(k), stack_.end());
    stack_.resize(k - 1);
    return items;
  }
  V memo(uint64_t key, size_t at) {
    const auto it = memo_.find(key);
    DT_CHECK(it != memo_.end(), source_, ": data.pkl refers to memo entry ", key, " at byte ", at, " before defining it");
    return it->second;
  }
  static V sequence(Value::Kind kind, std::vector<V> items) {
    auto v = make(kind);
    v->items = std::move(items);
    return v;
  }
  void set_items(const V& dict, const std::vector<V>& kv, size_t at) {
    // A dict that libtorch's unpickler would have dropped, or an opaque object (e.g. a
    // custom dict class): only real dicts keep their entries.
    DT_CHECK(kv.size() % 2 == 0, source_, ": malformed data.pkl (odd SETITEMS at byte ", at, ")");
    if (dict->kind != Value::Dict) return;
    dict->items.insert(dict->items.end(), kv.begin(), kv.end());
  }
  static V object_of(const V& cls) {
    auto o = make(Value::Object);
    o->s = cls->kind == Value::Global ? cls->s + "." + cls->s2 : "?";
    return o;
  }
  // ('storage', torch.<Type>Storage, key, location, numel) -> the storage as a 1-D tensor.
  V persistent(const V& pid, size_t at) {
    DT_CHECK(pid->kind == Value::Tuple && pid->items.size() >= 5 && pid->items[0]->s == "storage" &&
                 pid->items[1]->kind == Value::Global,
             source_, ": persistent id at byte ", at, " of data.pkl is not a ('storage', type, key, location, numel) tuple");
    const std::string type = pid->items[1]->s2, key = pid->items[2]->s;
    const int64_t numel = pid->items[4]->i;
    torch::Dtype dtype;
    DT_CHECK(storage_dtype(type, &dtype), source_, ": storage ", key, " has type torch.", type,
             ", expected a float, integer or bool storage");
    const auto it = storages_.find(key);
    DT_CHECK(it != storages_.end(), source_, ": storage ", key, " (data/", key, ") is missing from the archive");
    const size_t need = static_cast<size_t>(numel) * torch::elementSize(dtype);
    DT_CHECK(numel >= 0 && it->second->size() >= need, source_, ": storage data/", key, " has ", it->second->size(),
             " bytes, expected ", need, " (", numel, " elements of ", type, ")");
    auto v = make(Value::Storage);
    v->s = key;
    v->i = numel;
    v->t = torch::from_blob(const_cast<char*>(it->second->data()), {numel}, torch::TensorOptions().dtype(dtype));
    return v;
  }
  std::vector<int64_t> ints(const V& tuple, const char* what, size_t at) {
    DT_CHECK(tuple->kind == Value::Tuple, source_, ": tensor ", what, " at byte ", at, " of data.pkl is not a tuple");
    std::vector<int64_t> out;
    for (const auto& x : tuple->items) {
      DT_CHECK(x->kind == Value::Int, source_, ": tensor ", what, " at byte ", at, " holds a non-integer");
      out.push_back(x->i);
    }
    return out;
  }
  V reduce(const V& fn, const V& args, size_t at) {
    const std::string name = fn->kind == Value::Global ? fn->s + "." + fn->s2 : "?";
    const auto& a = args->items;
    if (name == "collections.OrderedDict") return make(Value::Dict);
    if (name == "torch._utils._rebuild_parameter" || name == "torch.jit._pickle.restore_type_tag") {
      DT_CHECK(!a.empty(), source_, ": ", name, " without arguments at byte ", at, " of data.pkl");
      return a[0];
    }
    if (name != "torch._utils._rebuild_tensor_v2") return object_of(fn);
    DT_CHECK(a.size() >= 4 && a[0]->kind == Value::Storage && a[1]->kind == Value::Int, source_,
             ": _rebuild_tensor_v2 at byte ", at, " of data.pkl has unexpected arguments");
    const auto size = ints(a[2], "size", at), stride = ints(a[3], "stride", at);
    DT_CHECK(size.size() == stride.size(), source_, ": tensor at byte ", at, " has ", size.size(), " sizes but ",
             stride.size(), " strides");
    // The last element the view touches must lie inside the storage.
    int64_t last = a[1]->i;
    bool empty = false;
    for (size_t d = 0; d < size.size(); ++d) {
      DT_CHECK(size[d] >= 0 && stride[d] >= 0, source_, ": tensor at byte ", at, " has a negative size or stride");
      empty |= size[d] == 0;
      last += (size[d] - 1) * stride[d];
    }
    DT_CHECK(empty || (a[1]->i >= 0 && last < a[0]->i), source_, ": tensor at byte ", at, " reaches element ", last,
             " of storage data/", a[0]->s, " which has ", a[0]->i);
    auto v = make(Value::Tensor);
    v->t = empty ? torch::empty(size, a[0]->t.options()) : a[0]->t.as_strided(size, stride, a[1]->i).clone();
    return v;
  }

  const std::string& p_;
  std::map<std::string, const std::string*> storages_;
  std::string source_;
  size_t pos_ = 0;
  std::vector<V> stack_;
  std::map<uint64_t, V> memo_;
};

// The string-keyed tensors of a dict, in order (other entries skipped).
NamedTensors tensors_of(const Value& dict) {
  NamedTensors out;
  for (size_t k = 0; k + 1 < dict.items.size(); k += 2)
    if (dict.items[k]->kind == Value::Str && dict.items[k + 1]->kind == Value::Tensor)
      out.emplace_back(dict.items[k]->s, dict.items[k + 1]->t);
  return out;
}

}  // namespace

bool is_zip(const std::string& bytes) { return bytes.size() >= 4 && bytes.compare(0, 4, "PK\x03\x04") == 0; }

NamedTensors read_torch_save(const std::string& bytes, const std::string& source) {
  if (!is_zip(bytes)) {
    // The legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c.
    const bool legacy = bytes.size() > 4 && static_cast<unsigned char>(bytes[0]) == 0x80 &&
                        static_cast<unsigned char>(bytes[2]) == 0x8a;
    DT_THROW(source, legacy ? ": written in torch.save's legacy format (torch < 1.6 or _use_new_zipfile_serialization="
                              "False); save it again with torch.save(state_dict, path) from torch >= 1.6"
                            : ": not a file written by torch.save (expected a zip archive)");
  }
  const auto members = zip::read_members(bytes, source);
  std::string prefix;
  const std::string* pkl = nullptr;
  for (const auto& [name, data] : members) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = name.substr(0, slash + 1);
      pkl = &data;
      break;
    }
  }
  DT_CHECK(pkl, source, ": zip archive without <archive>/data.pkl: not a file written by torch.save");
  std::map<std::string, const std::string*> storages;
  const std::string data_dir = prefix + "data/";
  for (const auto& [name, data] : members)
    if (name.compare(0, data_dir.size(), data_dir) == 0) storages[name.substr(data_dir.size())] = &data;

  const V root = Machine(*pkl, std::move(storages), source).run();
  if (root->kind == Value::Object)
    DT_THROW(source, " holds a pickled Python object of class ", root->s,
             " (torch.save(model) saves the class, not the weights); save torch.save(model.state_dict(), path) instead");
  DT_CHECK(root->kind == Value::Dict, source, ": expected a state dict (a dict of name -> tensor), found a pickled ",
           root->kind == Value::List ? "list" : root->kind == Value::Tuple ? "tuple" : "value");
  auto found = tensors_of(*root);
  if (!found.empty()) return found;
  for (const char* key : {"state_dict", "model_state_dict", "model", "net", "module"}) {
    for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
      if (root->items[k]->kind != Value::Str || root->items[k]->s != key || root->items[k + 1]->kind != Value::Dict)
        continue;
      found = tensors_of(*root->items[k + 1]);
      if (!found.empty()) return found;
    }
  }
  std::string keys;
  for (size_t k = 0; k + 1 < root->items.size() && k < 20; k += 2)
    keys += (keys.empty() ? "" : ", ") + (root->items[k]->kind == Value::Str ? root->items[k]->s : "?");
  DT_THROW(source, ": a dict without tensors (keys: ", keys.empty() ? "none" : keys,
           "); expected a state dict, or a checkpoint holding one under state_dict, model_state_dict, model, net or module");
}

}  // namespace dualtune::models
