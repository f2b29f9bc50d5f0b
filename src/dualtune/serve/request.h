#pragma once
// Reading a request the same way in every handler: JSON bodies, fields and query
// parameters with their type and allowed range, and JSON answers. Every refusal is an
// HttpError (400 unless said otherwise) whose message names the field, what was
// expected and what was found; nothing a client sends reaches nlohmann::json's own
// exceptions (which would be a 500).
#include <httplib.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dualtune/serve/http_error.h"

namespace dualtune::serve {

/// The body as a JSON object: 415 when the Content-Type is not application/json, 400
/// when it does not parse (the message names where: "vector[0]" for a number that
/// overflows a double, like 1e999) or is not an object.
nlohmann::json json_body(const httplib::Request& req);

/// The fields of one JSON object of a request. `where` prefixes every message (e.g.
/// "items[2]: "), so a refusal names the field inside the body. A field that is absent
/// or null takes its fallback.
class JsonFields {
 public:
  explicit JsonFields(const nlohmann::json& object, std::string where = "") : j_(object), where_(std::move(where)) {}
  /// Present and not null.
  bool has(const char* field) const;
  /// Integer in [lo, hi]; `fallback` when absent. 1.0, "1", 1e999 and 2^64 are refused.
  int64_t integer(const char* field, int64_t fallback, int64_t lo, int64_t hi) const;
  /// Integer in [lo, hi] that must be there.
  int64_t integer(const char* field, int64_t lo, int64_t hi) const;
  /// Finite number >= 0 (seconds); `fallback` when absent.
  double seconds(const char* field, double fallback) const;
  std::string string(const char* field, const std::string& fallback = "") const;
  bool boolean(const char* field, bool fallback) const;

 private:
  const nlohmann::json* find(const char* field) const;
  const nlohmann::json& j_;
  std::string where_;
};

/// What a JSON value is, for messages: `a string "ten"`, `null`, `an object`, `7`.
std::string describe(const nlohmann::json& value);

/// Appends the numbers of `values` (a JSON array) as float32; 400 naming `name` and the
/// value when one is not a number or not finite as a float32 (|x| > 3.4e38).
void append_float32(const nlohmann::json& values, const std::string& name, std::vector<float>& out);

/// Integer query parameter (?name=..), `fallback` when absent; 400 unless in [lo, hi].
int64_t int_param(const httplib::Request& req, const char* name, int64_t fallback, int64_t lo, int64_t hi);
/// String query parameter, `fallback` when absent.
std::string string_param(const httplib::Request& req, const char* name, const std::string& fallback = "");

/// Sends value as application/json with the status.
void send_json(httplib::Response& res, const nlohmann::json& value, int status = 200);
/// Sends {"error": message} with the status.
void send_error(httplib::Response& res, int status, const std::string& message);

}  // namespace dualtune::serve
