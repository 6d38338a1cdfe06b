"""Run pytest against the AddressSanitizer + UndefinedBehaviorSanitizer build.

Usage (what ``make test-sanitize`` does)::

    .venv-sanitize/bin/python tools/sanitize/run_tests.py [pytest arguments]

Python itself is not instrumented, so the sanitizer runtimes must be the first
libraries in the process: they are preloaded (``LD_PRELOAD``) from the compiler
that built ``build/sanitize``. Any memory error or undefined behaviour aborts
the run. Leaks are checked too, with one twist: the interpreter, numpy and
onnxruntime's own Python module leave memory unfreed at exit by design (hundreds
of reports on every run), so every report is written to a log folder and the run
fails only on a leak whose allocation stack passes through this project's C++
(``secondopinion::`` or ``cpp/``). Subprocesses the tests start (the CLI,
``SECONDOPINION_SIMD`` checks) inherit the preload and are checked the same way.

ONNX Runtime needs no exception: the extension ``dlopen``s the wheel's
(uninstrumented) library as usual; its allocations go through ASan's
allocator, so overruns of the buffers we hand it are caught, though its own
code is not instrumented. Every test that runs a model runs here.

What is off, and why: ``alloc_dealloc_mismatch``, for third-party bugs ASan
(GCC 12) cannot suppress by library: hnswlib's ``knn_query`` frees a ``new[]``
buffer with ``delete`` (python_bindings/bindings.cpp) and pytrec_eval frees one
with ``free`` (pytrec_eval.cpp, ``RelevanceEvaluator_init``). And the
pytest-benchmark plugin is not loaded: it runs ``git`` at start-up, and git's
own leaks would land in the log.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / "build" / "sanitize"

# A leak report is ours when its allocation stack names our namespace or sources.
OURS = re.compile(r"secondopinion::|/cpp/(?:src|bindings|include)/")
REPORT_START = re.compile(r"^(?:Direct|Indirect) leak of ", re.MULTILINE)


def compiler() -> str:
    """The C++ compiler that built build/sanitize (its runtimes must match)."""
    cache = BUILD_DIR / "CMakeCache.txt"
    if cache.is_file():
        for line in cache.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("CMAKE_CXX_COMPILER:"):
                return line.split("=", 1)[1].strip()
    return os.environ.get("CXX", "g++")


def runtime(cxx: str, name: str) -> str:
    """Absolute path of a sanitizer runtime shipped with ``cxx``."""
    found = subprocess.run(
        [cxx, f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(found) or not os.path.isfile(found):
        sys.exit(
            f"run_tests: {cxx} has no {name} (it printed {found!r}); install the compiler's "
            "sanitizer runtimes (Debian: libasan8 and libubsan1, pulled in by the gcc package)"
        )
    return found


def sanitized_extension() -> Path:
    """The installed ``secondopinion._core``, checked to be the instrumented build.

    Found without importing it: importing needs the preloaded runtime.
    """
    spec = importlib.util.find_spec("secondopinion")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("run_tests: secondopinion is not installed in this Python; run make test-sanitize")
    package = Path(next(iter(spec.submodule_search_locations)))
    cores = sorted(package.glob("_core*.so"))
    if not cores:
        sys.exit(f"run_tests: no compiled _core in {package}; run make test-sanitize")
    if b"__asan_init" not in cores[0].read_bytes():
        sys.exit(f"run_tests: {cores[0]} is not an AddressSanitizer build; run make test-sanitize")
    return cores[0]


def leak_reports(text: str) -> list[str]:
    """The individual "Direct/Indirect leak of ..." reports in one LeakSanitizer log."""
    starts = [m.start() for m in REPORT_START.finditer(text)]
    ends = [*starts[1:], len(text)]
    return [text[a:b].strip() for a, b in zip(starts, ends[: len(starts)], strict=True)]


def sanitizer_env(preload: list[str], logs: Path | None, *, leaks: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(preload)
    options = ["abort_on_error=1", f"detect_leaks={int(leaks)}", "alloc_dealloc_mismatch=0"]
    if logs is not None:
        options.append(f"log_path={logs / 'asan'}")
    env["ASAN_OPTIONS"] = ":".join(options)
    # Leaks do not end the process with an error: main() judges them from the logs.
    env["LSAN_OPTIONS"] = "exitcode=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def probe(preload: list[str], prefix: list[str], *, leaks: bool) -> tuple[bool, str]:
    """Start Python with the runtimes, import the extension, exit (leak check included)."""
    command = [*prefix, sys.executable, "-c", "import secondopinion._core"]
    try:
        done = subprocess.run(
            command,
            env=sanitizer_env(preload, None, leaks=leaks),
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        return False, "timed out (ASan spinning on DEADLYSIGNAL?)"
    return done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def launch_settings(preload: list[str]) -> tuple[list[str], bool]:
    """How to start the tests on this machine: (command prefix, leak checking on).

    Two things differ between CI boxes. GCC 12's ASan cannot map its shadow
    memory when the kernel randomises mmap with more than 28 bits
    (vm.mmap_rnd_bits = 32 on recent distributions): it loops on DEADLYSIGNAL.
    Turning address randomisation off for the test process (``setarch -R``)
    avoids that. And LeakSanitizer needs to ptrace its own threads at exit, which
    some containers forbid: then the run goes on without the leak check, and says so.
    """
    no_aslr = [shutil.which("setarch") or "setarch", platform.machine(), "-R"]
    tried: list[str] = []
    for prefix in ([], no_aslr):
        for leaks in (True, False):
            ok, output = probe(preload, prefix, leaks=leaks)
            if ok:
                if prefix:
                    print("run_tests: ASan needs address randomisation off here (setarch -R)")
                if not leaks:
                    print(
                        "run_tests: WARNING: LeakSanitizer cannot run on this machine "
                        "(it needs ptrace); memory errors and UB are still checked, leaks are not"
                    )
                return prefix, leaks
            tried.append(f"--- {' '.join(prefix) or 'plain'}, detect_leaks={int(leaks)}:\n{output}")
    sys.exit("run_tests: Python does not start under the sanitizers:\n" + "\n".join(tried))


def main(pytest_args: list[str]) -> int:
    cxx = compiler()
    preload = [runtime(cxx, "libasan.so"), runtime(cxx, "libubsan.so")]
    core = sanitized_extension()
    prefix, leaks = launch_settings(preload)
    logs = Path(tempfile.mkdtemp(prefix="secondopinion-asan-"))
    print(f"run_tests: {core} under {' '.join(preload)}; logs in {logs}", flush=True)
    command = [
        *prefix,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:benchmark",
        # fd capture would swallow a report written just before an abort.
        "--capture=sys",
        *pytest_args,
    ]
    for attempt in (1, 2):
        env = sanitizer_env(preload, logs, leaks=leaks)
        status = subprocess.run(command, cwd=ROOT, env=env).returncode
        errors, ours, ignored, tool_crash = read_logs(logs)
        # LeakSanitizer's exit-time scan stops the threads with a tracer that
        # sometimes faults itself ("Tracer caught signal 11 ... LeakSanitizer
        # has encountered a fatal error"), aborting a run whose tests all
        # passed. That is the tool failing, not a finding: run once more.
        if status != 0 and tool_crash and not errors and not ours and attempt == 1:
            print(
                "run_tests: LeakSanitizer crashed in its exit-time scan (not a finding); "
                "running the suite once more",
                flush=True,
            )
            logs = Path(tempfile.mkdtemp(prefix="secondopinion-asan-"))
            continue
        break
    for item in errors + ours:
        print(item, file=sys.stderr)
    print(
        f"run_tests: pytest exit {status}; {len(errors)} ASan error log(s); "
        f"{len(ours)} leak(s) through secondopinion's C++; "
        f"{ignored} leak report(s) from the interpreter and third-party modules ignored",
        flush=True,
    )
    if errors or ours:
        return 1
    if status == 0:
        shutil.rmtree(logs)
    return status


def read_logs(logs: Path) -> tuple[list[str], list[str], int, bool]:
    """(ASan error reports, leaks through our C++, other leaks ignored, whether
    LeakSanitizer itself crashed) from one run's sanitizer logs."""
    errors: list[str] = []
    ours: list[str] = []
    ignored = 0
    tool_crash = False
    for log in sorted(logs.glob("asan.*")):
        text = log.read_text(encoding="utf-8", errors="replace")
        if re.search(r"ERROR: AddressSanitizer", text):
            errors.append(f"--- {log}\n{text}")
        tool_crash |= "LeakSanitizer has encountered a fatal error" in text
        for report in leak_reports(text):
            if OURS.search(report):
                ours.append(f"--- {log}\n{report}")
            else:
                ignored += 1
    return errors, ours, ignored, tool_crash


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
