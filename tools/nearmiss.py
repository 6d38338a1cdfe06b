"""The hand-written near-miss development set (tools/data/nearmiss): load, check, export.

Measure on this set; never train, fit, tune or choose anything on it (see its README).

Each domain file ``domains/<domain>.json`` holds groups (a query, the chunk that
answers it, two near-misses that do not, and a chunk that only shares a word)
and filler chunks. :func:`load` reads every domain file into one
:class:`NearMissSet`, checking the schema as it goes: a violation raises
:class:`ValueError` whose message starts with the file and the key
(``.../medicine.json: groups[2].near_miss_attribute.changed: ...``).

Ids::

    documents   <group id>/answer, <group id>/near_miss_attribute,
                <group id>/near_miss_entity, <group id>/same_word, <domain>/filler-NN
    queries     <group id>/q (answered by <group id>/answer),
                <group id>/unanswerable (answered by nothing in the set)

::

    python tools/nearmiss.py --stats
    python tools/nearmiss.py --beir OUT_DIR     # corpus.jsonl, queries.jsonl, qrels/test.tsv
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FOLDER = Path(__file__).resolve().parent / "data" / "nearmiss"

#: The chunk roles of a group, in file order.
GROUP_ROLES = ("answer", "near_miss_attribute", "near_miss_entity", "same_word")
#: Every role a document can have.
ROLES = (*GROUP_ROLES, "filler")
#: What an attribute near-miss may change (the kind in its ``changed`` line).
ATTRIBUTE_KINDS = (
    "population",
    "version",
    "country",
    "year",
    "quantity",
    "negation",
    "time",
    "other",
)

_GROUP_KEYS = {*GROUP_ROLES, "id", "query"}
_OPTIONAL_GROUP_KEYS = {"unanswerable_query"}
_DOMAIN_NAME = re.compile(r"[a-z][a-z0-9_]*")
# "<kind>: <from> -> <to>"
_CHANGED = re.compile(r"([a-z_]+): (\S(?:.*\S)?) -> (\S(?:.*\S)?)")


@dataclass
class NearMissSet:
    """The whole set, flattened: BEIR-like maps plus what each id is."""

    #: doc id -> (title, text); the title is always "".
    corpus: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: query id -> text; answerable and unanswerable queries.
    queries: dict[str, str] = field(default_factory=dict)
    #: answerable query id -> {its answer doc id: 1}.
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    #: ids of the queries that no document answers.
    unanswerable: list[str] = field(default_factory=list)
    #: doc id -> one of ROLES.
    roles: dict[str, str] = field(default_factory=dict)
    #: doc id and query id -> group id ("" for filler).
    group_of: dict[str, str] = field(default_factory=dict)
    #: doc id and query id -> domain.
    domain_of: dict[str, str] = field(default_factory=dict)
    #: near-miss doc id -> its "changed" line ("population: children -> adults").
    changed: dict[str, str] = field(default_factory=dict)
    #: same_word doc id -> the word it shares with the query.
    shares: dict[str, str] = field(default_factory=dict)

    @property
    def domains(self) -> list[str]:
        return sorted(set(self.domain_of.values()))

    @property
    def groups(self) -> list[str]:
        return sorted({g for g in self.group_of.values() if g})


class _File:
    """Checks on one domain file; every failure names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ValueError:
        return ValueError(f"{self.path}: {key}: {problem}")

    def read(self) -> Any:
        def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for k, v in pairs:
                if k in seen:
                    raise self.fail(k, "duplicate key")
                seen[k] = v
            return seen

        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{self.path}: cannot read: {e}") from e
        try:
            return json.loads(text, object_pairs_hook=no_duplicate_keys)
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.path}: not JSON: {e}") from e

    def obj(self, value: Any, key: str, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key or "(top level)", f"expected an object, got {_kind(value)}")
        prefix = f"{key}." if key else ""
        for k in sorted(required - value.keys()):
            raise self.fail(prefix + k, "missing key")
        for k in sorted(value.keys() - required - optional):
            raise self.fail(prefix + k, "unknown key")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_kind(value)}")
        if not value.strip():
            raise self.fail(key, "empty text")
        return value

    def array(self, value: Any, key: str) -> list:
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def load(folder: Path = DEFAULT_FOLDER) -> NearMissSet:
    """Read every ``<folder>/domains/*.json``; raise ValueError on any schema violation."""
    folder = Path(folder)
    paths = sorted((folder / "domains").glob("*.json"))
    if not paths:
        raise ValueError(f"{folder / 'domains'}: no domain files (*.json)")
    data = NearMissSet()
    for path in paths:
        _load_domain(_File(path), data)
    return data


def _load_domain(f: _File, data: NearMissSet) -> None:
    top = f.obj(f.read(), "", {"domain", "groups", "filler"}, set())
    domain = f.text(top["domain"], "domain")
    if not _DOMAIN_NAME.fullmatch(domain):
        raise f.fail("domain", f"{domain!r} is not lower_snake_case")
    if domain != f.path.stem:
        raise f.fail("domain", f"{domain!r} differs from the file name {f.path.stem!r}")
    group_id = re.compile(re.escape(domain) + r"-\d{2}")

    groups = f.array(top["groups"], "groups")
    if not groups:
        raise f.fail("groups", "no groups")
    seen_groups: set[str] = set()
    for i, raw in enumerate(groups):
        key = f"groups[{i}]"
        group = f.obj(raw, key, _GROUP_KEYS, _OPTIONAL_GROUP_KEYS)
        gid = f.text(group["id"], f"{key}.id")
        if not group_id.fullmatch(gid):
            raise f.fail(f"{key}.id", f"{gid!r} does not match '{domain}-NN'")
        if gid in seen_groups:
            raise f.fail(f"{key}.id", f"duplicate group id {gid!r}")
        seen_groups.add(gid)

        texts = {"answer": f.text(group["answer"], f"{key}.answer")}
        for role, extra in (
            ("near_miss_attribute", "changed"),
            ("near_miss_entity", "changed"),
            ("same_word", "shares"),
        ):
            sub = f.obj(group[role], f"{key}.{role}", {"text", extra}, set())
            texts[role] = f.text(sub["text"], f"{key}.{role}.text")
            note = f.text(sub[extra], f"{key}.{role}.{extra}")
            if extra == "changed":
                _check_changed(f, note, f"{key}.{role}.changed", role)
                data.changed[f"{gid}/{role}"] = note
            else:
                data.shares[f"{gid}/{role}"] = note.strip()
        for role in GROUP_ROLES:
            _add_doc(data, f"{gid}/{role}", texts[role], role, gid, domain)

        qid = f"{gid}/q"
        _add_query(data, qid, f.text(group["query"], f"{key}.query"), gid, domain)
        data.qrels[qid] = {f"{gid}/answer": 1}
        if "unanswerable_query" in group:
            text = f.text(group["unanswerable_query"], f"{key}.unanswerable_query")
            _add_query(data, f"{gid}/unanswerable", text, gid, domain)
            data.unanswerable.append(f"{gid}/unanswerable")

    for i, raw in enumerate(f.array(top["filler"], "filler")):
        text = f.text(raw, f"filler[{i}]")
        _add_doc(data, f"{domain}/filler-{i + 1:02d}", text, "filler", "", domain)


def _check_changed(f: _File, note: str, key: str, role: str) -> None:
    match = _CHANGED.fullmatch(note.strip())
    if not match:
        raise f.fail(key, f"{note!r} is not '<kind>: <from> -> <to>'")
    kind = match.group(1)
    if role == "near_miss_entity":
        if kind != "entity":
            raise f.fail(key, f"kind {kind!r}: an entity near-miss changes 'entity'")
    elif kind not in ATTRIBUTE_KINDS:
        raise f.fail(key, f"kind {kind!r} is not one of {', '.join(ATTRIBUTE_KINDS)}")


def _add_doc(data: NearMissSet, did: str, text: str, role: str, gid: str, domain: str) -> None:
    data.corpus[did] = ("", text)
    data.roles[did] = role
    data.group_of[did] = gid
    data.domain_of[did] = domain


def _add_query(data: NearMissSet, qid: str, text: str, gid: str, domain: str) -> None:
    data.queries[qid] = text
    data.group_of[qid] = gid
    data.domain_of[qid] = domain


def write_beir(data: NearMissSet, out_dir: Path) -> Path:
    """Write the set as a BEIR folder; return it.

    ``corpus.jsonl``, ``queries.jsonl`` (answerable and unanswerable queries),
    ``qrels/test.tsv`` (answerable queries only, so the unanswerable ones are
    the unjudged queries) and ``nearmiss.json`` (roles, groups, domains, the
    unanswerable query ids, the changed and shares notes) for tools that need
    to tell the roles apart.
    """
    out = Path(out_dir)
    (out / "qrels").mkdir(parents=True, exist_ok=True)

    def write_jsonl(name: str, records: list[dict[str, str]]) -> None:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        (out / name).write_text(lines, encoding="utf-8", newline="\n")

    write_jsonl(
        "corpus.jsonl",
        [{"_id": d, "title": title, "text": text} for d, (title, text) in data.corpus.items()],
    )
    write_jsonl("queries.jsonl", [{"_id": q, "text": t} for q, t in data.queries.items()])
    rows = ["query-id\tcorpus-id\tscore\n"]
    rows += [f"{q}\t{d}\t{s}\n" for q, docs in data.qrels.items() for d, s in docs.items()]
    (out / "qrels" / "test.tsv").write_text("".join(rows), encoding="utf-8", newline="\n")
    meta = {
        "unanswerable": data.unanswerable,
        "roles": data.roles,
        "group_of": data.group_of,
        "domain_of": data.domain_of,
        "changed": data.changed,
        "shares": data.shares,
    }
    (out / "nearmiss.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8", newline="\n"
    )
    return out


def stats(data: NearMissSet) -> str:
    """Counts, as printed by ``--stats``."""
    roles = Counter(data.roles.values())
    kinds = Counter(note.split(":", 1)[0] for note in data.changed.values())
    lines = [
        f"domains        {len(data.domains)} ({', '.join(data.domains)})",
        f"groups         {len(data.groups)}",
        f"chunks         {len(data.corpus)} (" + ", ".join(f"{r} {roles[r]}" for r in ROLES) + ")",
        f"queries        {len(data.queries)} (answerable {len(data.qrels)}, "
        f"unanswerable {len(data.unanswerable)})",
        "changed kinds  " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        "",
        f"{'domain':<20} {'groups':>6} {'filler':>6} {'unanswerable':>12}",
    ]
    for domain in data.domains:
        groups = {g for d, g in data.group_of.items() if g and data.domain_of[d] == domain}
        filler = sum(
            1 for d, r in data.roles.items() if r == "filler" and data.domain_of[d] == domain
        )
        unanswerable = sum(1 for q in data.unanswerable if data.domain_of[q] == domain)
        lines.append(f"{domain:<20} {len(groups):>6} {filler:>6} {unanswerable:>12}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The hand-written near-miss development set: measure on it, never fit on it."
    )
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="the set's folder")
    parser.add_argument("--stats", action="store_true", help="print the counts")
    parser.add_argument("--beir", type=Path, metavar="OUT_DIR", help="write a BEIR folder")
    args = parser.parse_args(argv)
    if not args.stats and args.beir is None:
        parser.print_usage(sys.stderr)
        print("nothing to do: give --stats and/or --beir OUT_DIR", file=sys.stderr)
        return 2
    try:
        data = load(args.folder)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.stats:
        print(stats(data))
    if args.beir is not None:
        print(f"wrote {write_beir(data, args.beir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
