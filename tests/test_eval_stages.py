"""`secondopinion eval` for the dense, hybrid, rerank and gate stages, and
`index` / `search`, with the tiny models; metrics checked against pytrec_eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import random_text

from secondopinion.cli import main

pytrec_eval = pytest.importorskip("pytrec_eval")

N_DOCS = 80
N_QUERIES = 12


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory):
    rng = np.random.default_rng(3)
    folder = tmp_path_factory.mktemp("beir")
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(N_DOCS):
            doc = {"_id": f"d{i}", "title": random_text(rng, 3), "text": random_text(rng, 25)}
            f.write(json.dumps(doc) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i in range(N_QUERIES):
            f.write(json.dumps({"_id": f"q{i}", "text": random_text(rng, 4)}) + "\n")
        f.write(json.dumps({"_id": "unjudged", "text": "protein cell"}) + "\n")
    (folder / "qrels").mkdir()
    with open(folder / "qrels" / "dev.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i in range(N_QUERIES):
            for d in rng.choice(N_DOCS, size=int(rng.integers(1, 4)), replace=False):
                f.write(f"q{i}\td{d}\t1\n")
    return folder


def qrels_of(folder):
    qrels = {}
    for line in (folder / "qrels" / "dev.tsv").read_text().splitlines()[1:]:
        qid, did, rel = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(rel)
    return qrels


def run_eval(capsys, folder, tmp_path, emb_dir, ce_dir, stage, *extra):
    run_file = tmp_path / f"{stage}.jsonl"
    args = ["eval", "--data", str(folder), "--split", "dev", "--stage", stage, "--json"]
    args += ["--embedder", str(emb_dir), "--cross-encoder", str(ce_dir)]
    assert main([*args, "--run-out", str(run_file), *extra]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    records = [json.loads(line) for line in run_file.read_text().splitlines()]
    return report, records


def pytrec_means(folder, records, measure_keys):
    qrels = qrels_of(folder)
    run = {}
    for r in records:
        if r["query_id"] in qrels:
            chunks = r["chunks"]
            # Distinct scores by rank: pytrec_eval re-sorts, and must not reorder ties.
            run[r["query_id"]] = {c["id"]: float(len(chunks) - i) for i, c in enumerate(chunks)}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, measure_keys)
    per_query = evaluator.evaluate(run)
    n = len(qrels)  # queries with no chunk score 0 for us; pytrec_eval drops them
    return {m: sum(v[m] for v in per_query.values()) / n for m in ("ndcg_cut_10", "recall_100")}


@pytest.mark.parametrize("stage", ["dense", "hybrid", "rerank"])
def test_stage_metrics_agree_with_pytrec_eval(
    beir_folder, tmp_path, capsys, emb_dir, ce_dir, stage
):
    report, records = run_eval(
        capsys, beir_folder, tmp_path, emb_dir, ce_dir, stage, "--candidates", "30", "--k", "100"
    )
    assert report["stage"] == stage and report["queries"] == N_QUERIES
    assert len(records) == N_QUERIES
    want = pytrec_means(beir_folder, records, {"ndcg_cut.10", "recall.100"})
    assert report["ndcg@10"] == pytest.approx(want["ndcg_cut_10"], abs=1e-6)
    assert report["recall@100"] == pytest.approx(want["recall_100"], abs=1e-6)
    for r in records:
        scores = [c["score"] for c in r["chunks"]]
        assert scores == sorted(scores, reverse=True)
        assert set(r) >= {"query_id", "status", "best_score", "chunks", "timings_ms"}
    if stage == "rerank":
        assert all(len(r["chunks"]) == 30 for r in records)
        assert set(records[0]["timings_ms"]) >= {"bm25", "embed", "hnsw", "fuse", "rerank"}
        assert set(records[0]["chunks"][0]) == {
            "id",
            "score",
            "bm25_rank",
            "dense_rank",
            "fused_rank",
        }


def test_gate_stage_counts_and_all_queries(beir_folder, tmp_path, capsys, emb_dir, ce_dir):
    # The median best score as the floor: some queries answered, some refused.
    _, reranked = run_eval(
        capsys, beir_folder, tmp_path, emb_dir, ce_dir, "rerank", "--candidates", "20"
    )
    floor = float(np.median([r["best_score"] for r in reranked]))
    extra = ["--candidates", "20", "--top-n", "3", "--floor", f"{floor}", "--all-queries"]
    report, records = run_eval(capsys, beir_folder, tmp_path, emb_dir, ce_dir, "gate", *extra)
    assert len(records) == N_QUERIES + 1  # the unjudged query runs too
    assert records[-1]["query_id"] == "unjudged"
    answered = [r for r in records if r["status"] == "evidence"]
    refused = [r for r in records if r["status"] == "refusal"]
    assert answered and refused
    assert report["answered"] == len(answered) and report["refused"] == len(refused)
    assert report["mean_chunks"] == pytest.approx(
        sum(len(r["chunks"]) for r in answered) / len(answered)
    )
    for r in answered:
        assert 1 <= len(r["chunks"]) <= 3
        assert all(c["score"] >= floor for c in r["chunks"])
    for r in refused:
        assert r["chunks"] == [] and r["best_score"] < floor
    want = pytrec_means(beir_folder, records, {"ndcg_cut.10", "recall.100"})
    assert report["ndcg@10"] == pytest.approx(want["ndcg_cut_10"], abs=1e-6)


def test_bad_gate_arguments(beir_folder, capsys, emb_dir, ce_dir):
    base = ["eval", "--data", str(beir_folder), "--split", "dev", "--stage", "gate"]
    base += ["--embedder", str(emb_dir), "--cross-encoder", str(ce_dir)]
    assert main([*base, "--top-n", "-1"]) == 2
    assert "top_n" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--floor", "1.5"])


def test_index_and_search(beir_folder, tmp_path, capsys, emb_dir, ce_dir):
    models = ["--embedder", str(emb_dir), "--cross-encoder", str(ce_dir)]
    out = tmp_path / "pipe"
    assert main(["index", str(beir_folder), "--out", str(out), *models]) == 0
    assert (out / "manifest.json").is_file()
    capsys.readouterr()
    assert main(["search", str(out), "protein cell", "--json", "--floor", "0", *models]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "evidence" and len(result["chunks"]) == 10
    assert result["best_score"] == result["chunks"][0]["score"]
    assert main(["search", str(out), "protein cell", "--floor", "1", *models]) == 0
    assert "refused" in capsys.readouterr().out
    assert main(["search", str(out), "", *models]) == 2
    assert "query" in capsys.readouterr().err
    (out / "docs.jsonl").write_text("garbage\n")
    assert main(["search", str(out), "protein", *models]) == 2
    assert "docs.jsonl" in capsys.readouterr().err


def test_index_a_folder_of_text_files(tmp_path, capsys, emb_dir, ce_dir):
    models = ["--embedder", str(emb_dir), "--cross-encoder", str(ce_dir)]
    source = tmp_path / "notes"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("protein cell growth in the study")
    (source / "sub" / "b.md").write_text("blood dose and heart risk")
    (source / "ignored.bin").write_bytes(b"\x00\x01")
    out = tmp_path / "pipe"
    assert main(["index", str(source), "--out", str(out), *models]) == 0
    capsys.readouterr()
    assert main(["search", str(out), "blood dose", "--json", "--floor", "0", *models]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(c["id"] for c in result["chunks"]) == ["a.txt", "sub/b.md"]
    assert main(["index", str(tmp_path / "missing"), "--out", str(out), *models]) == 2


def test_demo_shows_refusals_and_cuts(capsys, emb_dir, ce_dir):
    models = ["--embedder", str(emb_dir), "--cross-encoder", str(ce_dir)]
    assert main(["demo", *models, "--floor", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("-> REFUSED") == 9  # every demo query: nothing reaches 1.0
    assert "(3) honest refusal of the off-topic question" in out
    assert main(["demo", *models, "--floor", "0"]) == 0
    out = capsys.readouterr().out
    assert "-> REFUSED" not in out and "(3) NOT refused" in out
    assert "top 5: not returned below" in out
