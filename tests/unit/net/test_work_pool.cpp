// The worker pool behind the resolver and the prime test: equal keys share one job, the queue is
// bounded, a blocked job does not hold up the next one, and nothing is delivered after close().
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "net/work_pool.h"

using tlstrace::net::WorkPool;
using namespace std::chrono_literals;

namespace {
// A gate the test opens: jobs block on it like getaddrinfo on a dead DNS server.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return open; });
  }
  void release() {
    std::lock_guard<std::mutex> l(mu);
    open = true;
    cv.notify_all();
  }
};

template <class P>
bool eventually(P pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}
}  // namespace

TEST_CASE("equal keys share one job; every waiter gets its result") {
  auto gate = std::make_shared<Gate>();
  auto runs = std::make_shared<std::atomic<int>>(0);
  WorkPool<int> pool(1, 1, 4);
  std::atomic<int> sum{0};
  for (int i = 0; i < 3; ++i)
    CHECK(pool.submit(
        "k",
        [gate, runs] {
          ++*runs;
          gate->wait();
          return 7;
        },
        [&sum](const int& r) { sum += r; }));
  gate->release();
  CHECK(eventually([&] { return sum == 21; }));
  CHECK(*runs == 1);
}

TEST_CASE("a blocked job does not hold up another key: the pool grows up to its maximum") {
  auto gate = std::make_shared<Gate>();
  WorkPool<int> pool(1, 2, 8);
  std::atomic<int> fast{0};
  CHECK(pool.submit(
      "dead",
      [gate] {
        gate->wait();
        return 0;
      },
      [](const int&) {}));
  CHECK(pool.submit(
      "good", [] { return 1; }, [&fast](const int& r) { fast = r; }));
  CHECK(eventually([&] { return fast == 1; }));
  gate->release();
}

TEST_CASE("the queue is bounded, and close() ends all delivery") {
  auto gate = std::make_shared<Gate>();
  auto pool = std::make_unique<WorkPool<int>>(1, 1, 2);
  std::atomic<int> delivered{0};
  auto job = [gate] {
    gate->wait();
    return 1;
  };
  CHECK(pool->submit("a", job, [&](const int&) { ++delivered; }));
  CHECK(eventually([&] { return true; }));
  std::this_thread::sleep_for(50ms);  // "a" is running: the queue holds the next two
  CHECK(pool->submit("b", job, [&](const int&) { ++delivered; }));
  CHECK(pool->submit("c", job, [&](const int&) { ++delivered; }));
  CHECK_FALSE(pool->submit("d", job, [&](const int&) { ++delivered; }));
  CHECK(pool->submit("b", job, [&](const int&) { ++delivered; }));  // joins the waiting "b"
  pool->close();
  CHECK_FALSE(pool->submit("e", job, [&](const int&) { ++delivered; }));
  gate->release();
  pool.reset();
  std::this_thread::sleep_for(100ms);
  CHECK(delivered == 0);
}
