#include "dualtune/serve/request.h"

#include <cmath>

namespace dualtune::serve {

nlohmann::json json_body(const httplib::Request& req) {
  const std::string type = req.get_header_value("Content-Type");
  HTTP_CHECK(type.rfind("application/json", 0) == 0, 415, "expected a JSON body (Content-Type: application/json), found ",
             type.empty() ? "no Content-Type" : "Content-Type: " + type);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::parse_error& e) {
    HTTP_THROW(400, "body is not valid JSON: ", e.what());
  }
  HTTP_CHECK(j.is_object(), 400, "expected a JSON object as body, found a JSON ", j.type_name());
  return j;
}

int64_t json_int(const nlohmann::json& body, const char* field, int64_t fallback, int64_t lo, int64_t hi) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  HTTP_CHECK(it->is_number_integer(), 400, "\"", field, "\" must be an integer between ", lo, " and ", hi, ", found ",
             it->dump());
  const int64_t v = it->get<int64_t>();
  HTTP_CHECK(v >= lo && v <= hi, 400, "\"", field, "\" must be between ", lo, " and ", hi, ", found ", v);
  return v;
}

double json_seconds(const nlohmann::json& body, const char* field, double fallback) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  HTTP_CHECK(it->is_number() && std::isfinite(it->get<double>()) && it->get<double>() >= 0, 400, "\"", field,
             "\" must be a number of seconds >= 0, found ", it->dump());
  return it->get<double>();
}

std::string json_string(const nlohmann::json& body, const char* field, const std::string& fallback) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  HTTP_CHECK(it->is_string(), 400, "\"", field, "\" must be a string, found ", it->dump());
  return it->get<std::string>();
}

bool json_bool(const nlohmann::json& body, const char* field, bool fallback) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  HTTP_CHECK(it->is_boolean(), 400, "\"", field, "\" must be true or false, found ", it->dump());
  return it->get<bool>();
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

void send_json(httplib::Response& res, const nlohmann::json& value, int status) {
  res.status = status;
  // Invalid UTF-8 (a key from a file name) is replaced, never a throw mid-answer.
  res.set_content(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, nlohmann::json{{"error", message}}, status);
}

}  // namespace dualtune::serve
