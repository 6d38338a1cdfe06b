#include "secondopinion/thread_count.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace secondopinion {

namespace {

bool read_int(const std::string& path, int& value) {
  std::ifstream in(path);
  return static_cast<bool>(in >> value);
}

// CPUs allowed by cgroup v2's cpu.max ("max 100000" or "<quota> <period>"); 0 when unlimited.
int cgroup_cpu_limit() {
  std::ifstream in("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  try {
    return std::max(1, static_cast<int>(std::ceil(std::stod(quota) / period)));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

int default_thread_count() {
  int count = 0;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
    std::set<std::pair<int, int>> cores;  // (package, core) pairs
    bool topology_known = true;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &mask)) continue;
      ++count;
      const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      int package = 0, core = 0;
      if (read_int(dir + "physical_package_id", package) && read_int(dir + "core_id", core)) {
        cores.emplace(package, core);
      } else {
        topology_known = false;
      }
    }
    if (topology_known && !cores.empty()) count = static_cast<int>(cores.size());
  }
  if (count <= 0) count = static_cast<int>(std::thread::hardware_concurrency());
  const int limit = cgroup_cpu_limit();
  if (limit > 0) count = std::min(count, limit);
  return std::max(count, 1);
}

}  // namespace secondopinion
