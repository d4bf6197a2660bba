// The cipher-suite name table against every suite the installed OpenSSL knows.
#include <doctest/doctest.h>

#include <cstdio>
#include <sstream>
#include <string>

#include "wire/registry.h"

TEST_CASE("every suite of `openssl ciphers -V -stdname` has the same IANA name in our table") {
  std::FILE* p = ::popen("openssl ciphers -V -stdname 'ALL:COMPLEMENTOFALL:@SECLEVEL=0' 2>/dev/null", "r");
  REQUIRE(p);
  char line[512];
  int n = 0;
  while (std::fgets(line, sizeof line, p)) {
    unsigned hi = 0, lo = 0;
    char name[128] = {};
    if (std::sscanf(line, " 0x%x,0x%x - %127s", &hi, &lo, name) != 3) continue;
    const auto id = static_cast<std::uint16_t>((hi << 8) | lo);
    CAPTURE(name);
    CHECK(tlstrace::wire::cipherSuiteName(id) == name);
    ++n;
  }
  ::pclose(p);
  CHECK(n > 100);
}
