// How many compute threads this process should use by default.
#pragma once

namespace secondopinion {

// Physical cores this process may run on: the CPUs in its affinity mask,
// counting hyper-threads of one core once (a GEMM-bound thread gains little
// from a sibling), and capped by a cgroup v2 CPU quota when a container sets
// one (a 2-CPU container on a 64-core host must not start 64 threads).
// Always at least 1.
int default_thread_count();

}  // namespace secondopinion
