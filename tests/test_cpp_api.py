"""The C++ API without Python: install the core, build examples/cpp against it, run it.

tools/cpp_example.sh configures the core with SECONDOPINION_PYTHON=OFF, installs
it to a temporary prefix, builds the example with find_package(secondopinion)
and runs a ranking and a small concurrency check. The ranking is compared with
the Python package's CrossEncoder (tokenizers + the same ONNX Runtime), which
shares no tokenisation code with the C++ path.

The first run compiles the core (about a minute on 2 cores); later runs reuse
build/cpp. Skipped where no C++ compiler or cmake is found (CI has both).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from secondopinion import CrossEncoder
from secondopinion._runtime import find_onnxruntime_library

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "cpp_example.sh"
VENV_CMAKE = Path(sys.executable).parent / "cmake"
CMAKE = str(VENV_CMAKE) if VENV_CMAKE.exists() else shutil.which("cmake")
COMPILER = shutil.which(os.environ.get("CXX", "c++"))
QUERY = "how much ibuprofen can a 6 year old take"

pytestmark = pytest.mark.skipif(
    CMAKE is None or COMPILER is None, reason="needs cmake and a C++ compiler"
)


@pytest.fixture(scope="module")
def example_run() -> str:
    """Output of tools/cpp_example.sh with a short concurrency check (4 threads, 40 calls)."""
    env = dict(
        os.environ,
        PY=sys.executable,
        CMAKE=str(CMAKE),
        THREADS="4",
        SECONDOPINION_ORT_LIBRARY=find_onnxruntime_library(),
    )
    proc = subprocess.run(
        ["bash", str(SCRIPT), "40"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def parse_ranking(output: str) -> list[tuple[int, float, float]]:
    """(passage index, score, logit) per ranked line of the example's table."""
    section = output.split("rank\tindex\tscore\tlogit\tpassage\n", 1)[1]
    rows = []
    for line in section.splitlines():
        fields = line.split("\t")
        if len(fields) < 5 or not fields[0].isdigit():
            break
        rows.append((int(fields[1]), float(fields[2]), float(fields[3])))
    return rows


def test_installed_package_has_the_library_headers_and_config(example_run, tmp_path):
    build = ROOT / "build" / "cpp" / "core"
    subprocess.run(
        [str(CMAKE), "--install", str(build), "--prefix", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "lib" / "libsecondopinion.a").is_file()
    assert (tmp_path / "lib" / "secondopinion" / "libstemmer.a").is_file()
    assert (tmp_path / "lib" / "cmake" / "secondopinion" / "secondopinionConfig.cmake").is_file()
    headers = {p.name for p in (tmp_path / "include" / "secondopinion").glob("*.hpp")}
    assert {"wordpiece.hpp", "reranker.hpp", "bm25_index.hpp", "topk.hpp", "fusion.hpp"} <= headers
    assert (tmp_path / "include/secondopinion/onnxruntime/onnxruntime_cxx_api.h").is_file()
    # Public headers include only public headers (and the ONNX Runtime ones),
    # and nothing of Python.
    for header in (tmp_path / "include" / "secondopinion").glob("*.hpp"):
        assert not re.search(r"pybind11|Python\.h|PyObject", header.read_text()), header.name
        for included in re.findall(r'#include "([^"]+)"', header.read_text()):
            assert (tmp_path / "include" / included).is_file(), (header.name, included)
    # Each public header compiles on its own against the installed tree.
    ort = tmp_path / "include" / "secondopinion" / "onnxruntime"
    for header in sorted((tmp_path / "include" / "secondopinion").glob("*.hpp")):
        proc = subprocess.run(
            [
                COMPILER,
                "-std=c++17",
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-DORT_API_MANUAL_INIT",
                f"-I{tmp_path / 'include'}",
                f"-isystem{ort}",
                "-x",
                "c++",
                "-",
            ],
            input=f'#include "secondopinion/{header.name}"\n',
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, (header.name, proc.stderr[-2000:])
    # Relocatable: no absolute path of the build or the prefix in the config.
    for cmake_file in (tmp_path / "lib" / "cmake" / "secondopinion").glob("*.cmake"):
        text = cmake_file.read_text()
        assert str(tmp_path) not in text and str(ROOT) not in text, cmake_file.name


def test_cpp_ranking_equals_the_python_cross_encoder(example_run):
    passages = (ROOT / "build" / "cpp" / "passages.txt").read_text().splitlines()
    ranking = parse_ranking(example_run)
    assert len(ranking) == len(passages)
    expected = CrossEncoder().rank(QUERY, passages)
    assert [r[0] for r in ranking] == [e["corpus_id"] for e in expected]
    # The same token ids reach the same ONNX Runtime library in the same
    # batches, so the logits are the same floats (printed with 9 digits).
    np.testing.assert_array_equal(
        np.array([r[2] for r in ranking], dtype=np.float32),
        np.array([e["logit"] for e in expected], dtype=np.float32),
    )
    np.testing.assert_allclose([r[1] for r in ranking], [e["score"] for e in expected], atol=1e-6)


def test_cpp_concurrency_check_passes(example_run):
    summary = re.search(
        r"calls (\d+), threads (\d+), mismatches (\d+) .* exceptions (\d+)", example_run
    )
    assert summary is not None, example_run[-2000:]
    calls, threads, mismatches, exceptions = map(int, summary.groups())
    assert (calls, threads, mismatches, exceptions) == (40, 4, 0, 0)
    assert example_run.rstrip().endswith("PASS")


def test_example_reports_bad_input_and_exits_2(example_run, tmp_path):
    binary = ROOT / "build" / "cpp" / "example" / "secondopinion_rerank"
    env = dict(os.environ, SECONDOPINION_ORT_LIBRARY=find_onnxruntime_library())
    proc = subprocess.run(
        [str(binary), "--model", str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert f"{tmp_path}/secondopinion.json: missing or unreadable" in proc.stderr
    bad = tmp_path / "model"
    bad.mkdir()
    shutil.copy(ROOT / "python/secondopinion/models/cross-encoder/secondopinion.json", bad)
    (bad / "tokenizer.json").write_text('{"model": ')
    proc = subprocess.run(
        [str(binary), "--model", str(bad)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert f"{bad}/tokenizer.json: not valid JSON" in proc.stderr


FUSION_PROGRAM = r"""
#include <cstdio>
#include <vector>
#include "secondopinion/fusion.hpp"
using namespace secondopinion;

int main() {
  std::size_t n_lists, size;
  if (std::scanf("%zu", &n_lists) != 1) return 3;
  std::vector<std::vector<std::int64_t>> indices(n_lists);
  std::vector<std::vector<float>> scores(n_lists);
  std::vector<RankedList> lists(n_lists);
  for (std::size_t l = 0; l < n_lists; ++l) {
    if (std::scanf("%zu", &size) != 1) return 3;
    indices[l].resize(size);
    scores[l].resize(size);
    for (std::size_t p = 0; p < size; ++p)
      if (std::scanf("%lld %a", reinterpret_cast<long long*>(&indices[l][p]), &scores[l][p]) != 2)
        return 3;
    lists[l] = {indices[l].data(), scores[l].data(), size};
  }
  FusedList out;
  for (int method = 0; method < 2; ++method) {
    if (method == 0) fuse_rrf(lists, 60.0, {}, 0, out);
    else fuse_weighted(lists, std::vector<double>(n_lists, 1.0), ScoreNorm::MinMax, 0, out);
    std::printf("%zu\n", out.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      std::printf("%lld %a", static_cast<long long>(out.indices[i]), out.scores[i]);
      for (std::size_t l = 0; l < n_lists; ++l)
        std::printf(" %d %a", out.stage_ranks[l * out.size() + i],
                    out.stage_scores[l * out.size() + i]);
      std::printf("\n");
    }
  }
  return 0;
}
"""


def test_cpp_fusion_equals_python(example_run, tmp_path):
    """The C++ fuse_rrf / fuse_weighted (FusedList, stage scores gathered at
    once) give what the Python bindings (Fusion::write, stage scores on first
    use) give, bit for bit."""
    from secondopinion import fuse_rrf, fuse_weighted

    build = ROOT / "build" / "cpp" / "core"
    prefix = tmp_path / "prefix"
    subprocess.run(
        [str(CMAKE), "--install", str(build), "--prefix", str(prefix)],
        check=True,
        capture_output=True,
    )
    source = tmp_path / "fusion.cpp"
    source.write_text(FUSION_PROGRAM)
    binary = tmp_path / "fusion"
    subprocess.run(
        [
            COMPILER,
            "-std=c++17",
            "-O1",
            f"-I{prefix / 'include'}",
            str(source),
            "-o",
            str(binary),
            str(prefix / "lib" / "libsecondopinion.a"),
        ],
        check=True,
    )
    rng = np.random.default_rng(12)
    lists = []
    for _ in range(3):
        n = int(rng.integers(0, 400))
        indices = rng.choice(600, size=n, replace=False).astype(np.int64)
        scores = np.sort(rng.normal(size=n).astype(np.float32))[::-1].copy()
        lists.append((indices, scores))
    lines = [str(len(lists))]
    for indices, scores in lists:
        lines.append(str(len(indices)))
        lines += [f"{i} {float(s).hex()}" for i, s in zip(indices, scores, strict=True)]
    proc = subprocess.run(
        [str(binary)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True
    )
    rows = iter(proc.stdout.splitlines())
    for fused in (fuse_rrf(lists, k=60), fuse_weighted(lists, [1.0, 1.0, 1.0], norm="minmax")):
        assert int(next(rows)) == len(fused)
        for j in range(len(fused)):
            fields = next(rows).split()
            assert int(fields[0]) == fused.indices[j]
            assert np.float32(float.fromhex(fields[1])) == fused.scores[j]
            for lst in range(len(lists)):
                assert int(fields[2 + 2 * lst]) == fused.stage_ranks[lst, j]
                cpp_score = np.float32(float.fromhex(fields[3 + 2 * lst]))
                np.testing.assert_array_equal(cpp_score, fused.stage_scores[lst, j])
