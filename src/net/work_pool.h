// A few threads for blocking work that must not run on an io thread (getaddrinfo, the safe-prime
// test of a large custom DH prime): one slow job would stall every connection of that thread.
// Bounded: at most `max_queued` distinct jobs wait; equal keys share one job (a slow name asked for
// every second holds one thread, not all of them). The threads are detached, since a blocked
// getaddrinfo cannot be cancelled: close() (before the io_contexts go) drops every waiter, and a
// job that ends later delivers nothing. Results are delivered under the pool's lock, so a deliver
// callback only posts to its connection's executor and returns.
#pragma once
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tlstrace::net {

template <class R>
class WorkPool {
 public:
  using Job = std::function<R()>;
  using Deliver = std::function<void(const R&)>;

  // `threads` at first, one more (up to `max_threads`) whenever a job would otherwise wait for a
  // busy one: a thread blocked on a dead name costs only its stack, and must not hold up good names.
  WorkPool(std::size_t threads, std::size_t max_threads, std::size_t max_queued) : st_(std::make_shared<State>()) {
    st_->max_queued = max_queued;
    st_->max_threads = std::max(threads, max_threads);
    for (std::size_t i = 0; i < threads; ++i) spawn();
  }
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;
  ~WorkPool() { close(); }

  // Runs `job` on a pool thread (or joins the one for `key` already waiting or running) and hands
  // its result to `deliver` there. False, and `deliver` is never called, when the queue is full or
  // the pool is closed.
  [[nodiscard]] bool submit(const std::string& key, Job job, Deliver deliver) {
    std::lock_guard<std::mutex> lock(st_->mu);
    if (st_->closed) return false;
    if (auto it = st_->jobs.find(key); it != st_->jobs.end()) {
      it->second.waiters.push_back(std::move(deliver));
      return true;
    }
    if (st_->queue.size() >= st_->max_queued) return false;
    Pending& p = st_->jobs[key];
    p.job = std::move(job);
    p.waiters.push_back(std::move(deliver));
    st_->queue.push_back(key);
    if (st_->busy + st_->queue.size() > st_->threads && st_->threads < st_->max_threads) spawn();
    st_->cv.notify_one();
    return true;
  }

  // No delivery after this returns; idle threads end, busy ones when their job does.
  void close() {
    std::lock_guard<std::mutex> lock(st_->mu);
    st_->closed = true;
    st_->queue.clear();
    st_->jobs.clear();
    st_->cv.notify_all();
  }

  [[nodiscard]] std::size_t maxQueued() const { return st_->max_queued; }

 private:
  struct Pending {
    Job job;
    std::vector<Deliver> waiters;
  };
  void spawn() {  // under the lock, or before any thread runs
    ++st_->threads;
    std::thread([st = st_] { work(*st); }).detach();
  }

  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::string> queue;                  // keys not started yet, oldest first
    std::unordered_map<std::string, Pending> jobs;  // waiting or running, by key
    std::size_t max_queued = 0;
    std::size_t max_threads = 0;
    std::size_t threads = 0;  // started
    std::size_t busy = 0;     // running a job
    bool closed = false;
  };

  static void work(State& st) {
    std::unique_lock<std::mutex> lock(st.mu);
    for (;;) {
      st.cv.wait(lock, [&] { return st.closed || !st.queue.empty(); });
      if (st.closed) return;
      const std::string key = std::move(st.queue.front());
      st.queue.pop_front();
      Job job = std::move(st.jobs[key].job);
      ++st.busy;
      lock.unlock();
      const R result = job();
      lock.lock();
      --st.busy;
      if (st.closed) return;
      auto it = st.jobs.find(key);
      if (it == st.jobs.end()) continue;
      const std::vector<Deliver> waiters = std::move(it->second.waiters);
      st.jobs.erase(it);
      for (const Deliver& d : waiters) d(result);
    }
  }

  std::shared_ptr<State> st_;
};

}  // namespace tlstrace::net
