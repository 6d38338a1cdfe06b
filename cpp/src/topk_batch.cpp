// Top-k of many rows at once, rows spread over std::threads.
#include <algorithm>
#include <atomic>
#include <exception>
#include <limits>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "secondopinion/thread_count.hpp"
#include "secondopinion/topk.hpp"

#if defined(__linux__)
#include <sched.h>
#endif

namespace secondopinion {

void topk_batch(const float* matrix, std::size_t rows, std::size_t cols, std::size_t k,
                std::int64_t* out_index, float* out_score, std::size_t* out_count,
                unsigned threads) {
  const std::size_t width = std::min(k, cols);
  if (rows == 0) return;
  if (threads == 0) threads = static_cast<unsigned>(default_thread_count());
  const std::size_t workers = std::min<std::size_t>(threads, rows);

  // Rows are handed out one at a time from a shared counter, so a slow row
  // (ascending data, many survivors) does not hold up a whole static slice.
  std::atomic<std::size_t> next_row{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    try {
      for (std::size_t r; (r = next_row.fetch_add(1, std::memory_order_relaxed)) < rows;) {
        std::int64_t* idx = out_index + r * width;
        float* score = out_score + r * width;
        const std::size_t got = topk(matrix + r * cols, cols, k, idx, score);
        std::fill(idx + got, idx + width, std::int64_t{-1});
        std::fill(score + got, score + width, std::numeric_limits<float>::quiet_NaN());
        if (out_count != nullptr) out_count[r] = got;
      }
    } catch (...) {
      // Only allocation can fail; stop handing out rows and report the first error.
      next_row.store(rows, std::memory_order_relaxed);
      const std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };

  if (workers <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (std::size_t t = 1; t < workers; ++t) {
      try {
        pool.emplace_back(work);
      } catch (const std::system_error&) {
        break;  // no more threads to be had: the ones running share all rows
      }
    }
    work();  // the calling thread takes its share too
    for (std::thread& th : pool) th.join();
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace secondopinion
