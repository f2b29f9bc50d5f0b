#pragma once
// Reading a request the same way in every handler: JSON bodies, integer and string
// parameters with their allowed range, and JSON answers. Every refusal is an HttpError
// whose message names the field, what was expected and what was found.
#include <httplib.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "dualtune/serve/http_error.h"

namespace dualtune::serve {

/// The body as a JSON object: 415 when the Content-Type is not application/json, 400
/// when it does not parse or is not an object.
nlohmann::json json_body(const httplib::Request& req);

/// Integer field of a JSON object, `fallback` when absent; 400 when it is not an integer
/// in [lo, hi].
int64_t json_int(const nlohmann::json& body, const char* field, int64_t fallback, int64_t lo, int64_t hi);
/// Non-negative number field, `fallback` when absent; 400 otherwise.
double json_seconds(const nlohmann::json& body, const char* field, double fallback);
/// String field, `fallback` when absent; 400 when it is not a string.
std::string json_string(const nlohmann::json& body, const char* field, const std::string& fallback = "");
/// Boolean field, `fallback` when absent; 400 when it is not a boolean.
bool json_bool(const nlohmann::json& body, const char* field, bool fallback);

/// Integer query parameter (?name=..), `fallback` when absent; 400 unless in [lo, hi].
int64_t int_param(const httplib::Request& req, const char* name, int64_t fallback, int64_t lo, int64_t hi);
/// String query parameter, `fallback` when absent.
std::string string_param(const httplib::Request& req, const char* name, const std::string& fallback = "");

/// Sends value as application/json with the status.
void send_json(httplib::Response& res, const nlohmann::json& value, int status = 200);
/// Sends {"error": message} with the status.
void send_error(httplib::Response& res, int status, const std::string& message);

}  // namespace dualtune::serve
