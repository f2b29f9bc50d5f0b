#include "dualtune/serve/request.h"

#include <cfloat>
#include <cmath>
#include <limits>

namespace dualtune::serve {
namespace {

using json = nlohmann::json;

/// Follows a parse through SAX events to say where in the body it failed:
/// "items[2].vector[5]". Only run on a body that did not parse, to locate the problem.
class WhereSax : public nlohmann::json_sax<json> {
 public:
  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override { return open(false); }
  bool key(string_t& k) override {
    stack_.back().key = k;
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(true); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string& token, const nlohmann::detail::exception& e) override {
    token_ = token;
    overflow_ = e.id == 406;  // out_of_range.406: number overflow
    message_ = e.what();
    return false;
  }

  /// "vector[0]", "items[1].key"; "" at the top.
  std::string where() const {
    std::string s;
    for (const auto& f : stack_) {
      if (f.array) s += "[" + std::to_string(f.index) + "]";
      else if (!f.key.empty() || !s.empty()) s += (s.empty() ? "" : ".") + f.key;
    }
    return s;
  }
  std::string token_, message_;
  bool overflow_ = false;

 private:
  struct Frame {
    bool array;
    size_t index = 0;  ///< arrays: elements before the current one
    std::string key;   ///< objects: the current member
  };
  bool value() {
    if (!stack_.empty() && stack_.back().array) ++stack_.back().index;
    return true;
  }
  bool open(bool array) {
    stack_.push_back({array});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return value();
  }
  std::vector<Frame> stack_;
};

std::string quoted(const std::string& where, const char* field) { return where + "\"" + field + "\""; }

}  // namespace

std::string describe(const json& value) {
  std::string s = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

json json_body(const httplib::Request& req) {
  const std::string type = req.get_header_value("Content-Type");
  HTTP_CHECK(type.rfind("application/json", 0) == 0, 415, "expected a JSON body (Content-Type: application/json), found ",
             type.empty() ? "no Content-Type" : "Content-Type: " + type);
  json j;
  try {
    j = json::parse(req.body);
  } catch (const json::exception&) {  // parse_error, or out_of_range (a number overflowing a double)
    WhereSax sax;
    json::sax_parse(req.body, &sax);
    const std::string where = sax.where();
    if (sax.overflow_)
      HTTP_THROW(400, "\"", where, "\" holds ", sax.token_, ", a number beyond the range of a double (about 1.8e308); "
                 "expected a finite number");
    HTTP_THROW(400, "body is not valid JSON", where.empty() ? "" : " (in \"" + where + "\")", ": ", sax.message_);
  }
  HTTP_CHECK(j.is_object(), 400, "expected a JSON object as body, found a JSON ", j.type_name());
  return j;
}

const json* JsonFields::find(const char* field) const {
  if (!j_.is_object()) return nullptr;
  const auto it = j_.find(field);
  return it == j_.end() || it->is_null() ? nullptr : &*it;
}

bool JsonFields::has(const char* field) const { return find(field) != nullptr; }

int64_t JsonFields::integer(const char* field, int64_t fallback, int64_t lo, int64_t hi) const {
  const json* v = find(field);
  if (!v) return fallback;
  HTTP_CHECK(v->is_number_integer(), 400, where_, quoted("", field), " must be an integer between ", lo, " and ", hi,
             ", found ", describe(*v));
  // An unsigned beyond int64 (up to 2^64 - 1) is out of every range here; get<int64_t>
  // would wrap it to a negative number.
  const bool in = v->is_number_unsigned() ? v->get<uint64_t>() <= static_cast<uint64_t>(hi) && hi >= 0 &&
                                                static_cast<int64_t>(v->get<uint64_t>()) >= lo
                                          : v->get<int64_t>() >= lo && v->get<int64_t>() <= hi;
  HTTP_CHECK(in, 400, where_, quoted("", field), " must be between ", lo, " and ", hi, ", found ", describe(*v));
  return v->is_number_unsigned() ? static_cast<int64_t>(v->get<uint64_t>()) : v->get<int64_t>();
}

int64_t JsonFields::integer(const char* field, int64_t lo, int64_t hi) const {
  HTTP_CHECK(has(field), 400, where_, quoted("", field), " must be an integer between ", lo, " and ", hi, ", found ",
             j_.is_object() && j_.contains(field) ? "null" : "none");
  return integer(field, 0, lo, hi);
}

double JsonFields::seconds(const char* field, double fallback) const {
  const json* v = find(field);
  if (!v) return fallback;
  // Numbers in a parsed body are finite (json_body refuses overflows), but check anyway.
  HTTP_CHECK(v->is_number() && std::isfinite(v->get<double>()) && v->get<double>() >= 0, 400, where_, quoted("", field),
             " must be a number of seconds >= 0, found ", describe(*v));
  return v->get<double>();
}

std::string JsonFields::string(const char* field, const std::string& fallback) const {
  const json* v = find(field);
  if (!v) return fallback;
  HTTP_CHECK(v->is_string(), 400, where_, quoted("", field), " must be a string, found ", describe(*v));
  return v->get<std::string>();
}

bool JsonFields::boolean(const char* field, bool fallback) const {
  const json* v = find(field);
  if (!v) return fallback;
  HTTP_CHECK(v->is_boolean(), 400, where_, quoted("", field), " must be true or false, found ", describe(*v));
  return v->get<bool>();
}

void append_float32(const json& values, const std::string& name, std::vector<float>& out) {
  for (const auto& x : values) {
    // Range-check the double before narrowing: a double beyond float's range converted
    // to float is undefined behaviour, not inf.
    const bool ok = x.is_number() && std::isfinite(x.get<double>()) && std::fabs(x.get<double>()) <= FLT_MAX;
    HTTP_CHECK(ok, 400, name, " holds ", describe(x), "; expected finite numbers (float32)");
    out.push_back(static_cast<float>(x.get<double>()));
  }
}

int64_t int_param(const httplib::Request& req, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  if (!req.has_param(name)) return fallback;
  const std::string s = req.get_param_value(name);
  size_t used = 0;
  int64_t v = 0;
  bool ok = !s.empty();
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    ok = false;
  }
  HTTP_CHECK(ok && used == s.size(), 400, "query parameter ", name, " must be an integer between ", lo, " and ", hi,
             ", found '", s, "'");
  HTTP_CHECK(v >= lo && v <= hi, 400, "query parameter ", name, " must be between ", lo, " and ", hi, ", found ", v);
  return v;
}

std::string string_param(const httplib::Request& req, const char* name, const std::string& fallback) {
  return req.has_param(name) ? req.get_param_value(name) : fallback;
}

void send_json(httplib::Response& res, const json& value, int status) {
  res.status = status;
  // Invalid UTF-8 (a key from a file name) is replaced, never a throw mid-answer.
  res.set_content(value.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, json{{"error", message}}, status);
}

}  // namespace dualtune::serve
