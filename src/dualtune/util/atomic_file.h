#pragma once
// Atomic output: every file dualtune writes goes to "<path>.tmp.<pid>" first and is
// renamed over <path> only once complete and flushed, so a crash or a full disk
// never leaves a half file that a later step would trust.
#include <functional>
#include <ostream>
#include <string>

namespace dualtune {

/// Calls write(tmp) with a temporary path beside path (for writers that need a file
/// name, e.g. torch archives), fsyncs the file written there, then renames it to path.
/// On any failure (exception from write, rename error) the temporary file is removed
/// and the exception rethrown, or dualtune::Error thrown naming path.
void write_path_atomic(const std::string& path, const std::function<void(const std::string& tmp)>& write);

/// Calls write(os) on a temporary file beside path, fsyncs it, then renames it to path.
/// On any failure (exception from write, stream error, rename error) the temporary
/// file is removed and dualtune::Error is thrown naming path.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Same, for a string payload.
void write_text_atomic(const std::string& path, const std::string& text);

/// Reads a whole file; throws dualtune::Error naming path if it cannot be opened.
std::string read_file(const std::string& path);

/// Creates dir (and parents) and checks that a file can be created in it; throws a
/// clear error otherwise. Called before long work starts.
void ensure_writable_dir(const std::string& dir);

}  // namespace dualtune
