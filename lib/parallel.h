// Minimal fork-join parallelism: every batch operation splits into tasks run on a few threads.
#pragma once

#include <cstddef>
#include <functional>

namespace vecpack {

// requested 0 means one thread per core.
unsigned resolve_threads(unsigned requested);

// Runs fn(task, worker) for task in [0, tasks) on up to `threads` threads (worker < threads);
// tasks are handed out in order. The first exception thrown by fn is rethrown here.
void parallel_for(size_t tasks, unsigned threads, const std::function<void(size_t task, unsigned worker)>& fn);

// Sets OpenBLAS to one thread, once: callers split work over their own threads, and BLAS
// threads on top would only oversubscribe the cores.
void keep_blas_single_threaded();

}  // namespace vecpack
