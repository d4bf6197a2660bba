#include "sinks/files.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace tlstrace::sinks {

namespace {
std::string octal(mode_t m) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
  return b;
}
}  // namespace

int openOutputFile(const std::string& path, const char* what, int flags, bool secrets, std::string& error) {
  const std::string name = std::string(what) + " " + path;
  const bool truncate = flags & O_TRUNC;
  const int fd =
      ::open(path.c_str(), (flags & ~O_TRUNC) | O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, secrets ? 0600 : 0666);
  if (fd < 0) {
    error = "cannot open " + name + ": " + std::strerror(errno);
    return -1;
  }
  const auto refuse = [&](std::string why) {
    ::close(fd);
    error = "refusing to write " + name + ": " + why;
    return -1;
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return refuse(std::strerror(errno));
  // The mode given to open(2) applies only to a file it creates: an existing one keeps its own.
  if (secrets && (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
    if (st.st_uid != ::geteuid())
      return refuse("it belongs to uid " + std::to_string(st.st_uid) + ", not to this user (uid " +
                    std::to_string(::geteuid()) + "), and it will hold secrets; remove it or choose another path");
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
      if (::fchmod(fd, 0600) != 0)
        return refuse(std::string("it holds secrets and its mode ") + octal(st.st_mode) +
                      " cannot be narrowed to 0600: " + std::strerror(errno));
      spdlog::warn("{} had mode {}, readable by others: narrowed to 0600 (it holds secrets)", name, octal(st.st_mode));
    }
  }
  if (truncate && S_ISREG(st.st_mode) && ::ftruncate(fd, 0) != 0) return refuse(std::strerror(errno));
  return fd;
}

int openOutputFileOrThrow(const std::string& path, const char* what, int flags, bool secrets) {
  std::string error;
  const int fd = openOutputFile(path, what, flags, secrets, error);
  if (fd < 0) throw std::runtime_error(error);
  return fd;
}

}  // namespace tlstrace::sinks
