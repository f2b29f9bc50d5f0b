#pragma once
// Tiny generated datasets for the torch-side tests: IDX files (raw, big-endian
// header per the MNIST format) whose class c shows a bright 6×6 square at a
// class-specific position on a noisy background, so a model learns them in one epoch.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

namespace dualtune::testdata {

inline void write_be32(std::ofstream& os, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  os.write(reinterpret_cast<const char*>(b), 4);
}

/// Writes DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte with n_train / n_test items
/// of `classes` classes (labels i % classes).
inline void write_tiny_idx(const std::string& dir, int n_train, int n_test, int classes, uint32_t seed = 1) {
  std::filesystem::create_directories(dir);
  std::mt19937 rng(seed);
  for (const auto& [prefix, n] : {std::pair<std::string, int>{"train", n_train}, {"t10k", n_test}}) {
    std::ofstream img(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
    std::ofstream lab(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
    write_be32(img, 0x00000803);
    write_be32(img, static_cast<uint32_t>(n));
    write_be32(img, 28);
    write_be32(img, 28);
    write_be32(lab, 0x00000801);
    write_be32(lab, static_cast<uint32_t>(n));
    for (int i = 0; i < n; ++i) {
      const int c = i % classes;
      std::vector<unsigned char> px(28 * 28);
      for (auto& p : px) p = static_cast<unsigned char>(rng() % 40);
      const int r0 = 2 + (c % 4) * 6, c0 = 2 + (c / 4) * 6;
      for (int r = r0; r < r0 + 6; ++r)
        for (int q = c0; q < c0 + 6; ++q) px[r * 28 + q] = static_cast<unsigned char>(200 + rng() % 56);
      img.write(reinterpret_cast<const char*>(px.data()), static_cast<std::streamsize>(px.size()));
      const unsigned char l = static_cast<unsigned char>(c);
      lab.write(reinterpret_cast<const char*>(&l), 1);
    }
  }
}

/// Runs a shell command; returns its stdout + stderr, *status = exit code (-1 if it did not exit).
inline std::string run_command(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

/// The whole file, or "" when it does not exist (yet): for polling a child's output.
inline std::string slurp(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
  return s;
}

/// A fresh temporary directory for one test.
inline std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("dualtune_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace dualtune::testdata
