"""tools/counterfactuals.py: near-misses that change what the query asks about."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "counterfactuals.py"
_spec = importlib.util.spec_from_file_location("counterfactuals", _PATH)
cf = importlib.util.module_from_spec(_spec)
sys.modules["counterfactuals"] = cf
_spec.loader.exec_module(cf)

DOSE = (
    "For children aged 6 to 11, give 10 mg of ibuprofen per kilogram every 6 to 8 hours; "
    "children should not take more than four doses a day."
)


def test_population_swap_in_the_passage():
    out = cf.near_miss("ibuprofen dosage for children", DOSE, random.Random(0))
    assert out is not None
    text, edit = out
    assert edit.kind == "population" and edit.before == "children"
    assert "children" not in text.lower()
    # Every mention changed, case kept at the sentence start.
    assert text.count(edit.after) + text.count(edit.after.capitalize()) == 2
    assert "ibuprofen" in text


def test_query_side_twin_leaves_the_passage_alone():
    text, edit = cf.near_miss("ibuprofen dosage for children", DOSE, random.Random(1), side="query")
    assert "children" not in text and edit.after.lower() in text.lower()


def test_year_and_entity_swaps():
    passage = "The treaty was signed in Vienna in 1815 by Austria and Prussia."
    pool = cf.EntityPool(["Delegates later met in Geneva and Lisbon to discuss it."] * 3)
    text, edit = cf.near_miss("What was signed in Vienna in 1815?", passage, random.Random(2), pool)
    assert edit.kind in ("year", "entity")
    assert edit.before in ("Vienna", "1815") and edit.before not in text
    if edit.kind == "year":
        assert int(edit.after) != 1815 and edit.after in text


def test_the_answer_is_never_the_edited_span():
    passage = "France won the 1998 World Cup, beating Brazil in the final."
    for seed in range(20):
        out = cf.near_miss(
            "Who won the 1998 World Cup against Brazil?",
            passage,
            random.Random(seed),
            answer="France",
        )
        assert out is not None
        assert out[1].before != "France" and "France" in out[0]


def test_nothing_shared_gives_none():
    assert cf.near_miss("tallest mountain", "Paris is the capital.", random.Random(0)) is None


def test_entity_pool_skips_sentence_starts_and_common_words():
    texts = ["Located near the sea, the town of Portsmouth has a port.", "it is located"]
    pool = cf.EntityPool(texts)
    assert pool.by_len.get(1) == ["Portsmouth"]


def test_bad_side_is_rejected():
    with pytest.raises(ValueError, match="side"):
        cf.near_miss("q", "p", random.Random(0), side="both")
