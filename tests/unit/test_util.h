// Helpers shared by the unit tests: fixtures live in tests/data as hex captured from real stacks.
#pragma once
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tlstrace::testing {

inline std::vector<std::uint8_t> fromHex(const std::string& hex) {
  std::vector<std::uint8_t> out;
  int hi = -1;
  for (char c : hex) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>((hi << 4) | v));
      hi = -1;
    }
  }
  return out;
}

// One captured frame of tests/data/tcp/*.txt (tools/tcp_segment_vectors.py): link type, capture
// time, the frame's bytes in hex, "|", then tshark's columns for it.
struct TcpVectorFrame {
  std::uint32_t linktype = 0;
  double time = 0;
  std::vector<std::uint8_t> bytes;
  std::vector<std::string> cols;
};
inline std::vector<TcpVectorFrame> tcpVectorFrames(const std::string& path) {
  std::vector<TcpVectorFrame> out;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("missing vectors " + path);
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    TcpVectorFrame fr;
    std::string hex, bar;
    in >> fr.linktype >> fr.time >> hex >> bar;
    fr.bytes = fromHex(hex);
    for (std::string c; in >> c;) fr.cols.push_back(c);
    out.push_back(std::move(fr));
  }
  return out;
}

inline std::vector<std::uint8_t> fixture(const std::string& name) {
  std::ifstream f(std::string(TLSTRACE_TEST_DATA) + "/" + name);
  if (!f) throw std::runtime_error("missing fixture " + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return fromHex(ss.str());
}

// The first handshake message of a record stream (records reassembled).
inline std::vector<std::uint8_t> firstHandshakeMessage(const std::vector<std::uint8_t>& stream) {
  std::vector<std::uint8_t> body;
  std::size_t off = 0;
  while (off + 5 <= stream.size() && stream[off] == 22) {
    const std::size_t len = (stream[off + 3] << 8) | stream[off + 4];
    body.insert(body.end(), stream.begin() + static_cast<std::ptrdiff_t>(off + 5),
                stream.begin() + static_cast<std::ptrdiff_t>(std::min(stream.size(), off + 5 + len)));
    off += 5 + len;
    if (body.size() >= 4) {
      const std::size_t mlen = (std::size_t{body[1]} << 16) | (body[2] << 8) | body[3];
      if (body.size() >= 4 + mlen) {
        body.resize(4 + mlen);
        return body;
      }
    }
  }
  return body;
}

}  // namespace tlstrace::testing
