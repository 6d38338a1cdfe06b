"""`secondopinion eval`: metrics agree with pytrec_eval on the same run."""

import json
import random
import subprocess
import sys

import pytest

from secondopinion.cli import main

pytrec_eval = pytest.importorskip("pytrec_eval")

WORDS = (
    "ibuprofen dose child adult fever pain liver kidney stomach aspirin naproxen "
    "tablet syrup weight hour daily maximum inflammation enzyme prostaglandin"
).split()


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory):
    rng = random.Random(7)
    folder = tmp_path_factory.mktemp("beir")
    docs = []
    for i in range(120):
        words = rng.choices(WORDS, k=rng.randint(5, 30))
        docs.append({"_id": f"d{i}", "title": " ".join(words[:3]), "text": " ".join(words[3:])})
    with open(folder / "corpus.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    queries = {f"q{i}": " ".join(rng.choices(WORDS, k=rng.randint(1, 4))) for i in range(40)}
    queries["unjudged"] = "fever"
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels").mkdir()
    with open(folder / "qrels" / "dev.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i in range(40):
            for d in rng.sample(range(120), rng.randint(1, 4)):
                f.write(f"q{i}\td{d}\t{rng.randint(1, 2)}\n")
    return folder


def test_eval_json_agrees_with_pytrec_eval(beir_folder, tmp_path, capsys):
    run_file = tmp_path / "run.jsonl"
    args = ["eval", "--data", str(beir_folder), "--split", "dev", "--stage", "bm25"]
    assert main([*args, "--k", "1000", "--json", "--run-out", str(run_file)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["queries"] == 40  # only judged queries run
    assert report["qps"] > 0

    run = {}
    for line in run_file.read_text().splitlines():
        record = json.loads(line)
        hits = record["chunks"]
        # Distinct scores by rank so pytrec_eval's tie order cannot differ from ours.
        run[record["query_id"]] = {h["id"]: float(len(hits) - r) for r, h in enumerate(hits)}
    qrels = {}
    for line in (beir_folder / "qrels" / "dev.tsv").read_text().splitlines()[1:]:
        qid, did, rel = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(rel)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "recip_rank"})
    per_query = evaluator.evaluate(run)
    # A judged query with no hit at all scores 0 for us; pytrec_eval drops it.
    n = len(qrels)
    ndcg = sum(v["ndcg_cut_10"] for v in per_query.values()) / n
    recall = sum(v["recall_100"] for v in per_query.values()) / n
    assert report["ndcg@10"] == pytest.approx(ndcg, abs=1e-6)
    assert report["recall@100"] == pytest.approx(recall, abs=1e-6)


def test_mrr_cut_at_10_agrees(beir_folder, tmp_path, capsys):
    run_file = tmp_path / "run.jsonl"
    args = ["eval", "--data", str(beir_folder), "--split", "dev", "--json"]
    assert main([*args, "--run-out", str(run_file)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    qrels = {}
    for line in (beir_folder / "qrels" / "dev.tsv").read_text().splitlines()[1:]:
        qid, did, rel = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(rel)
    total = 0.0
    for line in run_file.read_text().splitlines():
        record = json.loads(line)
        relevant = qrels[record["query_id"]]
        for rank, hit in enumerate(record["chunks"][:10], start=1):
            if relevant.get(hit["id"], 0) > 0:
                total += 1.0 / rank
                break
    assert report["mrr@10"] == pytest.approx(total / len(qrels), abs=1e-9)


def test_json_is_last_stdout_line_and_logs_go_to_stderr(beir_folder):
    cmd = [sys.executable, "-m", "secondopinion", "eval", "--data", str(beir_folder)]
    out = subprocess.run(
        [*cmd, "--split", "dev", "--json"], capture_output=True, text=True, check=True
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    assert set(json.loads(lines[-1])) >= {"ndcg@10", "recall@100", "mrr@10", "qps", "queries"}
    assert "documents" in out.stderr


def test_missing_split_is_a_clear_error(beir_folder, capsys):
    assert main(["eval", "--data", str(beir_folder), "--split", "test"]) == 2
    assert "test" in capsys.readouterr().err


def test_demo_runs_and_marks_answers(capsys, emb_dir, ce_dir):
    # Tiny random models: the demo's layout, not its verdicts (those need the shipped models).
    assert main(["demo", "--embedder", str(emb_dir), "--cross-encoder", str(ce_dir)]) == 0
    out = capsys.readouterr().out
    assert "<- answer" in out
    assert "Query: who won the 1998 world cup" in out
