"""The hand-written near-miss development set (tools/data/nearmiss) and its loader.

Loads the real set: every domain file present must be complete and well formed.
Needs only the standard library and tools/nearmiss.py, not the compiled package.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import itertools
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tools" / "data" / "nearmiss"

# The writers' domains; the first three must be here now, all nine in the final set.
REQUIRED_NOW = {"medicine", "software", "law"}
ALL_DOMAINS = REQUIRED_NOW | {
    "finance",
    "sports",
    "geography_history",
    "cooking_nutrition",
    "consumer_tech",
    "astronomy_physics",
}
GROUPS_PER_DOMAIN = 6
FILLER_PER_DOMAIN = 30
MIN_WORDS, MAX_WORDS = 40, 120


def _load_tool():  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location("tools_nearmiss", ROOT / "tools" / "nearmiss.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


nearmiss = _load_tool()


@pytest.fixture(scope="module")
def data():
    return nearmiss.load()


def domain_files() -> list[Path]:
    return sorted((DATA / "domains").glob("*.json"))


# --- the real set ---------------------------------------------------------------------


def test_required_domains_are_present(data):
    assert REQUIRED_NOW <= set(data.domains)
    assert set(data.domains) == {p.stem for p in domain_files()}
    assert set(data.domains) <= ALL_DOMAINS, "a domain no writer was asked for"


def test_final_size_once_all_nine_domain_files_are_present(data):
    # FINAL-STATE ASSERTION: >= 50 groups over >= 8 domains. It applies once all
    # nine writers' domain files exist; until then the counts of the domains
    # present are checked by the other tests, and the required three are asserted.
    if len(domain_files()) >= 9:
        assert len(data.groups) >= 50
        assert len(data.domains) >= 8
    else:
        assert REQUIRED_NOW <= set(data.domains)


def test_counts_per_domain(data):
    for domain in data.domains:
        groups = sorted(
            {
                data.group_of[d]
                for d, r in data.roles.items()
                if r != "filler" and data.domain_of[d] == domain
            }
        )
        assert groups == [f"{domain}-{i:02d}" for i in range(1, GROUPS_PER_DOMAIN + 1)], domain
        filler = [d for d, r in data.roles.items() if r == "filler" and data.domain_of[d] == domain]
        assert filler == [f"{domain}/filler-{i:02d}" for i in range(1, FILLER_PER_DOMAIN + 1)]
        unanswerable = [q for q in data.unanswerable if data.domain_of[q] == domain]
        assert 2 <= len(unanswerable) <= GROUPS_PER_DOMAIN, f"{domain}: aim for about half"
    n = len(data.domains)
    assert len(data.groups) == GROUPS_PER_DOMAIN * n
    assert len(data.corpus) == (4 * GROUPS_PER_DOMAIN + FILLER_PER_DOMAIN) * n
    assert len(data.qrels) == GROUPS_PER_DOMAIN * n
    assert len(data.queries) == len(data.qrels) + len(data.unanswerable)
    assert len(data.unanswerable) >= len(data.groups) / 3


def test_every_group_is_complete(data):
    for gid in data.groups:
        for role in nearmiss.GROUP_ROLES:
            doc = f"{gid}/{role}"
            assert data.roles[doc] == role
            assert data.group_of[doc] == gid
        assert data.qrels[f"{gid}/q"] == {f"{gid}/answer": 1}
        assert f"{gid}/near_miss_attribute" in data.changed
        assert data.changed[f"{gid}/near_miss_entity"].startswith("entity: ")
        assert data.shares[f"{gid}/same_word"]
    for qid in data.unanswerable:
        assert qid.endswith("/unanswerable") and qid not in data.qrels
        assert data.group_of[qid] in data.groups


def test_ids_are_unique_and_consistent(data):
    # Dict keys cannot repeat; a duplicate in a file is a load error (tested below).
    # Here: every id's maps agree, and doc ids and query ids do not collide.
    assert set(data.corpus) == set(data.roles)
    assert not set(data.corpus) & set(data.queries)
    assert set(data.group_of) == set(data.corpus) | set(data.queries)
    assert set(data.domain_of) == set(data.group_of)
    assert len(set(data.unanswerable)) == len(data.unanswerable)
    for key, group in data.group_of.items():
        if group:
            assert key.startswith(group + "/")
            assert group.startswith(data.domain_of[key] + "-")
        else:
            assert data.roles[key] == "filler"
            assert key.startswith(data.domain_of[key] + "/filler-")


def test_word_counts_in_range(data):
    bad = {d: len(text.split()) for d, (_, text) in data.corpus.items()}
    bad = {d: n for d, n in bad.items() if not MIN_WORDS <= n <= MAX_WORDS}
    assert not bad, f"chunks outside {MIN_WORDS}-{MAX_WORDS} words: {bad}"
    for qid, text in data.queries.items():
        assert 2 <= len(text.split()) <= 30, qid


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def test_texts_are_unique(data):
    chunks = Counter(_normal(text) for _, text in data.corpus.values())
    assert not [t for t, n in chunks.items() if n > 1], "duplicate chunk texts"
    queries = Counter(_normal(text) for text in data.queries.values())
    assert not [t for t, n in queries.items() if n > 1], "duplicate query texts"


def test_no_templated_or_near_duplicate_chunks(data):
    # Near-misses are lexically close to the query, not copies of the answer:
    # no two chunks share more than 60% of their word types.
    words = {d: set(_tokens(text)) for d, (_, text) in data.corpus.items()}
    close = [
        (a, b)
        for (a, x), (b, y) in itertools.combinations(words.items(), 2)
        if len(x & y) > 0.6 * len(x | y)
    ]
    assert not close


STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself
    just me might more most much my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their them then there these they
    this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours get got use used using much many long""".split()
)


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in _tokens(text) if w not in STOPWORDS}


def test_answer_and_near_misses_share_a_content_word_with_the_query(data):
    # The design: BM25 or a weak model would rank these high.
    missing = []
    for gid in data.groups:
        query = content_words(data.queries[f"{gid}/q"])
        assert query, gid
        for role in ("answer", "near_miss_attribute", "near_miss_entity"):
            if not query & content_words(data.corpus[f"{gid}/{role}"][1]):
                missing.append(f"{gid}/{role}")
    assert not missing


def test_same_word_chunk_shares_its_word_with_the_query(data):
    for gid in data.groups:
        doc = f"{gid}/same_word"
        shared = content_words(data.shares[doc])
        assert shared, doc
        assert shared <= content_words(data.corpus[doc][1]), doc
        assert shared <= content_words(data.queries[f"{gid}/q"]), doc


def test_unanswerable_queries_stay_on_topic(data):
    for qid in data.unanswerable:
        gid = data.group_of[qid]
        assert _normal(data.queries[qid]) != _normal(data.queries[f"{gid}/q"])
        topic = set().union(
            *(content_words(data.corpus[f"{gid}/{r}"][1]) for r in nearmiss.GROUP_ROLES)
        )
        assert content_words(data.queries[qid]) & (content_words(data.queries[f"{gid}/q"]) | topic)


# --- write_beir and the CLI --------------------------------------------------------------


def test_write_beir_round_trip(data, tmp_path):
    out = nearmiss.write_beir(data, tmp_path / "beir")
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").read_text("utf-8").splitlines()]
    assert {r["_id"]: (r["title"], r["text"]) for r in corpus} == data.corpus
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text("utf-8").splitlines()]
    assert {r["_id"]: r["text"] for r in queries} == data.queries
    with (out / "qrels" / "test.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["query-id", "corpus-id", "score"]
    qrels: dict[str, dict[str, int]] = {}
    for q, d, s in rows[1:]:
        qrels.setdefault(q, {})[d] = int(s)
    assert qrels == data.qrels
    meta = json.loads((out / "nearmiss.json").read_text("utf-8"))
    assert meta["unanswerable"] == data.unanswerable
    assert meta["roles"] == data.roles


def test_cli_stats(capsys):
    assert nearmiss.main(["--stats"]) == 0
    out = capsys.readouterr().out
    data = nearmiss.load()
    assert f"groups         {len(data.groups)}" in out
    assert f"unanswerable {len(data.unanswerable)}" in out
    for domain in data.domains:
        assert domain in out


def test_cli_without_action_fails(capsys):
    assert nearmiss.main([]) == 2


# --- load rejects broken files --------------------------------------------------------------

WORDS = " ".join(f"word{i}" for i in range(50))


def valid_domain() -> dict:
    group = {
        "id": "demo-01",
        "query": "ibuprofen dosage for children",
        "answer": "answer " + WORDS,
        "near_miss_attribute": {"text": "adults " + WORDS, "changed": "population: a -> b"},
        "near_miss_entity": {"text": "acetaminophen " + WORDS, "changed": "entity: x -> y"},
        "same_word": {"text": "mechanism " + WORDS, "shares": "ibuprofen"},
        "unanswerable_query": "ibuprofen side effects in the elderly",
    }
    second = copy.deepcopy(group)
    second["id"] = "demo-02"
    del second["unanswerable_query"]
    return {"domain": "demo", "groups": [group, second], "filler": ["filler " + WORDS]}


def write(tmp_path: Path, doc: object, name: str = "demo", raw: str | None = None) -> Path:
    folder = tmp_path / "set"
    (folder / "domains").mkdir(parents=True, exist_ok=True)
    text = raw if raw is not None else json.dumps(doc)
    (folder / "domains" / f"{name}.json").write_text(text, encoding="utf-8")
    return folder


def test_a_valid_small_file_loads(tmp_path):
    data = nearmiss.load(write(tmp_path, valid_domain()))
    assert data.domains == ["demo"]
    assert data.groups == ["demo-01", "demo-02"]
    assert data.unanswerable == ["demo-01/unanswerable"]
    assert data.qrels == {"demo-01/q": {"demo-01/answer": 1}, "demo-02/q": {"demo-02/answer": 1}}
    assert data.roles["demo/filler-01"] == "filler"
    assert data.group_of["demo/filler-01"] == "" and data.domain_of["demo/filler-01"] == "demo"
    assert data.corpus["demo-02/same_word"] == ("", "mechanism " + WORDS)
    assert data.changed["demo-01/near_miss_attribute"] == "population: a -> b"
    assert data.shares["demo-01/same_word"] == "ibuprofen"


def _set(path: tuple, value: object):  # noqa: ANN202 - a mutator
    def mutate(doc: dict) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple):  # noqa: ANN202 - a mutator
    def mutate(doc: dict) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


BROKEN = {
    "missing query": (_delete(("groups", 0, "query")), "groups[0].query", "missing key"),
    "missing filler": (_delete(("filler",)), "filler", "missing key"),
    "missing shares": (
        _delete(("groups", 1, "same_word", "shares")),
        "groups[1].same_word.shares",
        "missing key",
    ),
    "missing changed": (
        _delete(("groups", 0, "near_miss_entity", "changed")),
        "groups[0].near_miss_entity.changed",
        "missing key",
    ),
    "unknown key": (_set(("groups", 0, "unanswerable"), "x"), "groups[0].unanswerable", "unknown"),
    "filler not a list": (_set(("filler",), "text"), "filler", "expected a list"),
    "groups not a list": (_set(("groups",), {}), "groups", "expected a list"),
    "no groups": (_set(("groups",), []), "groups", "no groups"),
    "group not an object": (_set(("groups", 1), "x"), "groups[1]", "expected an object"),
    "query not a string": (_set(("groups", 0, "query"), 3), "groups[0].query", "expected a str"),
    "near-miss not an object": (
        _set(("groups", 0, "near_miss_entity"), "text"),
        "groups[0].near_miss_entity",
        "expected an object",
    ),
    "empty answer": (_set(("groups", 0, "answer"), "   "), "groups[0].answer", "empty"),
    "empty filler": (_set(("filler", 0), ""), "filler[0]", "empty"),
    "empty unanswerable": (
        _set(("groups", 0, "unanswerable_query"), ""),
        "groups[0].unanswerable_query",
        "empty",
    ),
    "null text": (
        _set(("groups", 1, "same_word", "text"), None),
        "groups[1].same_word.text",
        "got null",
    ),
    "duplicate group id": (_set(("groups", 1, "id"), "demo-01"), "groups[1].id", "duplicate"),
    "id of another domain": (_set(("groups", 0, "id"), "other-01"), "groups[0].id", "demo-NN"),
    "id with one digit": (_set(("groups", 1, "id"), "demo-2"), "groups[1].id", "demo-NN"),
    "bad changed kind": (
        _set(("groups", 0, "near_miss_attribute", "changed"), "colour: red -> blue"),
        "groups[0].near_miss_attribute.changed",
        "kind 'colour'",
    ),
    "changed without arrow": (
        _set(("groups", 0, "near_miss_attribute", "changed"), "population: children, adults"),
        "groups[0].near_miss_attribute.changed",
        "<kind>: <from> -> <to>",
    ),
    "entity near-miss with an attribute kind": (
        _set(("groups", 1, "near_miss_entity", "changed"), "population: a -> b"),
        "groups[1].near_miss_entity.changed",
        "'entity'",
    ),
    "domain differs from file name": (_set(("domain",), "medicine"), "domain", "file name"),
    "domain not snake case": (_set(("domain",), "Demo"), "domain", "lower_snake_case"),
    "top level not an object": (lambda doc: None, "(top level)", "expected an object"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_load_rejects_a_broken_file_naming_the_key(tmp_path, case):
    mutate, key, problem = BROKEN[case]
    doc: object = valid_domain()
    if case == "top level not an object":
        doc = [doc]
    else:
        mutate(doc)
    folder = write(tmp_path, doc)
    with pytest.raises(ValueError) as error:
        nearmiss.load(folder)
    message = str(error.value)
    assert message.startswith(str(folder / "domains" / "demo.json") + ": "), message
    assert f": {key}: " in message, message
    assert problem in message, message


def test_load_rejects_a_duplicate_json_key(tmp_path):
    raw = json.dumps(valid_domain())[:-1] + ', "domain": "demo"}'
    folder = write(tmp_path, None, raw=raw)
    with pytest.raises(ValueError, match=r"demo\.json: domain: duplicate key"):
        nearmiss.load(folder)


def test_load_rejects_text_that_is_not_json(tmp_path):
    folder = write(tmp_path, None, raw='{"domain": "demo",')
    with pytest.raises(ValueError, match=r"demo\.json: not JSON"):
        nearmiss.load(folder)


def test_two_files_cannot_hold_one_domain(tmp_path):
    # The file name must equal the domain, so no domain can be written twice.
    folder = write(tmp_path, valid_domain())
    with pytest.raises(ValueError, match=r"copy\.json: domain: 'demo' differs from the file name"):
        nearmiss.load(write(tmp_path, valid_domain(), name="copy"))
    assert folder.exists()


def test_load_rejects_an_empty_folder(tmp_path):
    (tmp_path / "domains").mkdir()
    with pytest.raises(ValueError, match="no domain files"):
        nearmiss.load(tmp_path)
