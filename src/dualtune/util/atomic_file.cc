#include "dualtune/util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dualtune/util/error.h"

namespace fs = std::filesystem;

namespace dualtune {

void write_path_atomic(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    write(tmp);
    int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    DT_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename ", tmp, " to ", path, ": ",
             std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  write_path_atomic(path, [&](const std::string& tmp) {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    DT_CHECK(os.good(), "cannot create ", tmp, ": ", std::strerror(errno));
    write(os);
    os.flush();
    DT_CHECK(os.good(), "writing ", path, " failed (disk full?)");
  });
}

void write_text_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, [&](std::ostream& os) { os.write(text.data(), static_cast<std::streamsize>(text.size())); });
}

std::string read_file(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  DT_CHECK(is.good(), "cannot open ", path, ": ", std::strerror(errno));
  std::ostringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

void ensure_writable_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  DT_CHECK(!ec, "cannot create output directory ", dir, ": ", ec.message());
  const std::string probe = (fs::path(dir) / (".write_probe." + std::to_string(::getpid()))).string();
  std::ofstream os(probe);
  DT_CHECK(os.good(), "output directory ", dir, " is not writable: ", std::strerror(errno));
  os << "x";
  os.flush();
  const bool ok = os.good();
  os.close();
  std::remove(probe.c_str());
  DT_CHECK(ok, "output directory ", dir, " is not writable (disk full?)");
}

}  // namespace dualtune
