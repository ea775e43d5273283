#include "parallel.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace vecpack {

unsigned resolve_threads(unsigned requested) {
  if (requested) return requested;
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

namespace {

// True on a thread while it runs tasks of a pooled batch: a parallel_for inside a task runs its
// tasks in place, since every core is busy already.
thread_local bool in_pooled_batch = false;

// One batch of tasks handed out in order; a failing task stops the hand-out and its exception
// is kept for the caller.
struct Batch {
  const std::function<void(size_t, unsigned)>* fn;
  size_t tasks;
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;

  void work(unsigned worker) {
    for (;;) {
      size_t t = next.fetch_add(1);
      if (t >= tasks) return;
      try {
        (*fn)(t, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(tasks);
        return;
      }
    }
  }
};

// Threads kept between calls: a search of one query lasts tens of microseconds, less than
// starting and joining a thread. One batch runs at a time; a call from another thread that finds
// the pool busy starts threads of its own instead.
class Pool {
 public:
  // The process's pool; a child of fork() (which inherits no threads) gets a new one.
  static Pool& get() {
    static std::atomic<Pool*> pool{nullptr};
    Pool* p = pool.load();
    if (!p || p->pid_ != getpid()) {
      static std::mutex create;
      std::lock_guard<std::mutex> lock(create);
      p = pool.load();
      if (!p || p->pid_ != getpid()) {
        p = new Pool();  // never destroyed: its threads wait until the process ends
        pool.store(p);
      }
    }
    return *p;
  }

  bool try_run(Batch& batch, unsigned threads) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    const unsigned helpers = threads - 1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (workers_.size() < helpers) {
        const unsigned index = static_cast<unsigned>(workers_.size());
        workers_.emplace_back([this, index] { serve(index); });
        workers_.back().detach();
      }
      batch_ = &batch;
      helpers_ = helpers;
      running_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    in_pooled_batch = true;
    batch.work(0);
    in_pooled_batch = false;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return running_ == 0; });
    batch_ = nullptr;
    return true;
  }

 private:
  Pool() : pid_(getpid()) {}

  void serve(unsigned index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= helpers_) continue;
      Batch* batch = batch_;
      lock.unlock();
      in_pooled_batch = true;
      batch->work(index + 1);
      in_pooled_batch = false;
      lock.lock();
      if (--running_ == 0) done_.notify_one();
    }
  }

  const pid_t pid_;
  std::mutex busy_;  // held for the length of a batch
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Batch* batch_ = nullptr;
  unsigned helpers_ = 0, running_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace

void parallel_for(size_t tasks, unsigned threads, const std::function<void(size_t, unsigned)>& fn) {
  threads = resolve_threads(threads);
  if (threads > tasks) threads = static_cast<unsigned>(tasks ? tasks : 1);
  if (threads <= 1 || in_pooled_batch) {
    for (size_t t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  Batch batch;
  batch.fn = &fn;
  batch.tasks = tasks;
  if (!Pool::get().try_run(batch, threads)) {
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (unsigned w = 1; w < threads; ++w) pool.emplace_back([&batch, w] { batch.work(w); });
    batch.work(0);
    for (auto& th : pool) th.join();
  }
  if (batch.error) std::rethrow_exception(batch.error);
}

void keep_blas_single_threaded() {
  static const bool once = [] {
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

}  // namespace vecpack
