"""A search is text: a NUL byte or a lone surrogate in it finds nothing odd and raises nothing."""

from __future__ import annotations

import pytest

from db import queries
from db.store import session_scope


@pytest.fixture
def samples(ddft_store):
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="set", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "s1", "modality": "text", "prompt": "pancake batter",
             "answer": "whisk"},
            {"external_id": "s2", "modality": "text", "prompt": "omelette", "answer": "eggs"}])
        return dataset.id


@pytest.mark.parametrize("search", ["\x00", "pan\x00cake", "\udc80", "pan\udcffcake",
                                    "a\ud800", "\x00\udc80 pancake"])
@pytest.mark.parametrize("filtered", [False, True])
def test_a_nul_or_lone_surrogate_in_a_search_is_text(ddft_store, samples, search, filtered):
    dataset_id = samples if filtered else None  # FTS alone, and FTS beside other filters
    with session_scope(ddft_store) as session:
        found = queries.list_samples(session, search=search, dataset_id=dataset_id)
        counted = queries.count_samples(session, search=search, dataset_id=dataset_id)
    assert counted == len(found)
    assert all(s.external_id == "s1" for s in found)  # never the omelette: nothing matches it


def test_the_words_around_a_nul_byte_still_match(ddft_store, samples):
    with session_scope(ddft_store) as session:
        assert [s.external_id for s in queries.list_samples(session, search="\x00pancake")] \
            == ["s1"]
        assert queries.count_samples(session, search="\udc80 omelette") == 1
        assert queries.count_samples(session, search="\x00") == 0
