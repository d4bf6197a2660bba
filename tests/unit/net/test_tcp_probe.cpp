// net::timeWaitHeld against the kernel's own table of the same sockets (/proc/net/tcp and tcp6,
// state 06 = TIME_WAIT): a real loopback connection whose client closes first leaves TIME_WAIT on
// the client's 4-tuple (RFC 9293 3.6) and none on the server's, whose socket ends LAST_ACK -> CLOSE.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "net/tcp_probe.h"

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

sockaddr_storage own(int fd, bool peer) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (peer) REQUIRE(::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  else REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  return a;
}

// The address as /proc/net/tcp{,6} prints it: the address's bytes as host-order 32-bit words in
// hex, then the port in hex.
std::string procText(const sockaddr_storage& a) {
  char buf[64];
  if (a.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(a);
    std::snprintf(buf, sizeof buf, "%08X:%04X", in.sin_addr.s_addr, ntohs(in.sin_port));
    return buf;
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
  std::uint32_t w[4];
  std::memcpy(w, &in6.sin6_addr, sizeof w);
  std::snprintf(buf, sizeof buf, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3], ntohs(in6.sin6_port));
  return buf;
}

// The state /proc/net/tcp{,6} gives the socket with this 4-tuple (hex, "06" = TIME_WAIT), or "".
std::string procState(const sockaddr_storage& local, const sockaddr_storage& peer) {
  std::ifstream f(local.ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6");
  std::string line;
  std::getline(f, line);  // (the header)
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string slot, l, r, st;
    in >> slot >> l >> r >> st;
    if (l == procText(local) && r == procText(peer)) return st;
  }
  return "";
}

void checkFamily(int family, const char* loopback) {
  Fd lst(::socket(family, SOCK_STREAM, 0));
  REQUIRE(lst.fd >= 0);
  sockaddr_storage any{};
  socklen_t alen = 0;
  if (family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(any);
    in.sin_family = AF_INET;
    REQUIRE(inet_pton(AF_INET, loopback, &in.sin_addr) == 1);
    alen = sizeof in;
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(any);
    in6.sin6_family = AF_INET6;
    REQUIRE(inet_pton(AF_INET6, loopback, &in6.sin6_addr) == 1);
    alen = sizeof in6;
  }
  if (::bind(lst.fd, reinterpret_cast<sockaddr*>(&any), alen) != 0) {
    MESSAGE("no ", loopback, " here: ", std::strerror(errno));
    return;
  }
  REQUIRE(::listen(lst.fd, 4) == 0);
  const sockaddr_storage bound = own(lst.fd, false);
  Fd cli(::socket(family, SOCK_STREAM, 0));
  REQUIRE(::connect(cli.fd, reinterpret_cast<const sockaddr*>(&bound), alen) == 0);
  Fd srv(::accept(lst.fd, nullptr, nullptr));
  REQUIRE(srv.fd >= 0);
  const sockaddr_storage c_local = own(cli.fd, false), c_peer = own(cli.fd, true);
  const sockaddr_storage s_local = own(srv.fd, false), s_peer = own(srv.fd, true);

  // Established: the lookup finds the socket, and it is not TIME_WAIT.
  CHECK(procState(c_local, c_peer) == "01");
  CHECK(tlstrace::net::timeWaitHeld(c_local, c_peer) == false);

  // The client closes first; the server reads its end of stream, then closes.
  cli.reset();
  const timeval tv{5, 0};
  REQUIRE(::setsockopt(srv.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  char c = 0;
  REQUIRE(::recv(srv.fd, &c, 1, 0) == 0);
  srv.reset();
  // The last ACK crosses loopback within the close; bounded wait for the kernel's table anyway.
  for (int i = 0; i < 100 && procState(s_local, s_peer) != ""; ++i) ::usleep(10'000);

  REQUIRE(procState(c_local, c_peer) == "06");
  CHECK(tlstrace::net::timeWaitHeld(c_local, c_peer) == true);
  REQUIRE(procState(s_local, s_peer) == "");
  CHECK(tlstrace::net::timeWaitHeld(s_local, s_peer) == false);
}

}  // namespace

TEST_CASE("timeWaitHeld finds the TIME_WAIT that the active closer's 4-tuple leaves, as /proc/net/tcp shows it") {
  SUBCASE("IPv4") { checkFamily(AF_INET, "127.0.0.1"); }
  SUBCASE("IPv6") { checkFamily(AF_INET6, "::1"); }
}
