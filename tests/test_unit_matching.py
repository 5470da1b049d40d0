"""Multi-vector matching: a chunk is as close to a question as its best answer unit (vectorstore.units).

Real model, real Chroma in ``tmp_path``. The corpus is built so that the lever decides
the ranking: a long "Appliances" list holds the one bullet that answers the question
among seven unrelated ones (its whole-chunk vector is far from the question), and a
short "Toaster" section is about the right thing but does not answer it.
"""

from __future__ import annotations

import numpy as np
import pytest

from assistant.engine import Engine
from vectorstore import retriever as retriever_module
from vectorstore.retriever import HybridRetriever
from vectorstore.units import KEEP_BUNDLES, UnitVectors, bundle_path, load_unit_vectors

QUESTION = "How do I get the crumbs out of the toaster?"
HOME = """# Home

## Appliances

- The dishwasher runs the eco program overnight to save power.
- The oven door seal was replaced in March.
- The fridge light flickers when the door is left half open.
- The toaster's crumb tray slides out from the bottom: empty it over the bin every week.
- The kettle gets descaled with citric acid once a month.
- The microwave turntable is dishwasher safe.
- The extractor fan filter is washed every quarter.
- The washing machine drum is cleaned with a hot empty cycle.

## Toaster

The toaster is a four-slot model bought in 2019, kept on the counter next to the kettle.
"""


@pytest.fixture
def home_notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "home.md").write_text(HOME, encoding="utf-8")
    return folder


@pytest.fixture
def home_engine(home_notes, make_settings, embedder):
    engine = Engine(make_settings(home_notes), embedder=embedder)
    engine.index()
    return engine


class CountingLookup:
    """The engine's read-only cache lookup, counting the texts asked for; ``hide`` makes texts misses."""

    def __init__(self, inner, hide=lambda text: False) -> None:
        self.inner = inner
        self.hide = hide
        self.asked = 0

    def __call__(self, texts):
        self.asked += len(texts)
        return [None if self.hide(t) else v for t, v in zip(texts, self.inner(texts))]


def _retriever(engine: Engine, lookup, bundles=None, unit_texts=True) -> HybridRetriever:
    from assistant.answerers.extractive import chunk_unit_texts

    s = engine.settings
    return HybridRetriever(
        engine.client, engine.retriever.collection_name, engine.query_encoder, dense_weight=s.dense_weight,
        bm25_weight=s.bm25_weight, rrf_k=s.rrf_k, mmr=s.mmr, cached_vectors=lookup,
        unit_texts=chunk_unit_texts if unit_texts else None, unit_bundles=bundles, namespace=engine.model_name,
    )


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_the_chunk_whose_unit_answers_ranks_first(home_engine, mode):
    results = home_engine.search(QUESTION, 2, mode)
    assert [r.heading_path[-1] for r in results] == ["Appliances", "Toaster"]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_without_unit_matching_the_whole_chunk_vector_loses(home_notes, home_engine, make_settings, embedder, mode):
    # The same index read with the lever off: the control that shows the test above tests the lever.
    engine = Engine(make_settings(home_notes, unit_matching=False), embedder=embedder)
    assert [r.heading_path[-1] for r in engine.search(QUESTION, 2, mode)] == ["Toaster", "Appliances"]


def test_cosine_stays_the_chunks_own_and_the_dense_score_is_the_units(home_engine):
    # Abstention is calibrated on the chunk's own cosine: the unit lifts the ranking only.
    appliances = home_engine.search(QUESTION, 2, "dense")[0]
    vector = home_engine.embed_query(QUESTION)
    snapshot = home_engine.retriever.snapshot
    row = snapshot.position[appliances.chunk_id]
    own = float(snapshot.vectors[row] @ (vector / np.linalg.norm(vector)))
    assert appliances.cosine == pytest.approx(own, abs=1e-5)
    assert appliances.score > appliances.cosine + 0.2
    assert "best answer unit" in appliances.score_kind


def test_a_second_reader_loads_the_bundle_instead_of_every_unit(home_engine, tmp_path):
    chunks = len(home_engine.retriever.snapshot)
    first = CountingLookup(home_engine.retriever.cached_vectors)
    one = _retriever(home_engine, first, tmp_path / "bundles")
    before = one.search(QUESTION, 2, "dense", home_engine.embed_query(QUESTION))
    assert first.asked == chunks + 9  # every chunk, then every unit (8 bullets + the toaster paragraph)
    assert len(list((tmp_path / "bundles").glob("*.npz"))) == 1

    second = CountingLookup(home_engine.retriever.cached_vectors)
    two = _retriever(home_engine, second, tmp_path / "bundles")
    after = two.search(QUESTION, 2, "dense", home_engine.embed_query(QUESTION))
    assert second.asked == chunks  # chunk vectors only: the units came from the bundle
    assert [(r.chunk_id, r.score) for r in after] == [(r.chunk_id, r.score) for r in before]


def test_a_torn_bundle_is_read_from_the_cache_and_rewritten(home_engine, tmp_path):
    snapshot = home_engine.retriever.snapshot
    path = bundle_path(tmp_path, home_engine.model_name, snapshot.ids)
    path.write_bytes(b"PK\x03\x04 torn")
    lookup = CountingLookup(home_engine.retriever.cached_vectors)
    results = _retriever(home_engine, lookup, tmp_path).search(QUESTION, 1, "dense", home_engine.embed_query(QUESTION))
    assert results[0].heading_path[-1] == "Appliances"
    assert lookup.asked == len(snapshot) + 9
    with np.load(path) as bundle:
        assert len(bundle["vectors"]) == 9


def test_units_cached_after_the_commit_join_the_snapshot(home_engine, tmp_path, monkeypatch):
    # Indexing embeds the answer units after committing the chunks: a snapshot read in
    # between has none of them; the retriever asks again and never bundles a partial matrix.
    monkeypatch.setattr(retriever_module, "UNITS_RETRY_SECONDS", 0.0)
    hidden = {"on": True}
    # A unit of the Appliances list: its heading path and one bullet (the chunk's own text has eight).
    lookup = CountingLookup(home_engine.retriever.cached_vectors,
                            hide=lambda t: hidden["on"] and t.startswith("Home > Appliances\n") and t.count("\n") == 1)
    retriever = _retriever(home_engine, lookup, tmp_path / "bundles")
    vector = home_engine.embed_query(QUESTION)
    assert retriever.search(QUESTION, 1, "dense", vector)[0].heading_path[-1] == "Toaster"
    assert retriever.snapshot.units.incomplete
    assert not list((tmp_path / "bundles").glob("*.npz"))

    hidden["on"] = False  # the deferred phase has cached the units
    assert retriever.search(QUESTION, 1, "dense", vector)[0].heading_path[-1] == "Appliances"
    assert retriever.snapshot.units.incomplete == ()
    assert len(list((tmp_path / "bundles").glob("*.npz"))) == 1


def test_a_reindex_reads_only_the_changed_chunks_units(home_notes, home_engine, tmp_path):
    lookup = CountingLookup(home_engine.retriever.cached_vectors)
    retriever = _retriever(home_engine, lookup)
    retriever.refresh()
    (home_notes / "home.md").write_text(HOME.replace("four-slot model", "two-slot model"), encoding="utf-8")
    home_engine.index()
    lookup.asked = 0
    retriever.refresh(force=True)
    # The Toaster chunk changed: its chunk vector and its one unit; Appliances is reused whole.
    assert lookup.asked == 2
    assert retriever.snapshot.units.incomplete == ()
    assert retriever.search(QUESTION, 1, "dense", home_engine.embed_query(QUESTION))[0].heading_path[-1] == "Appliances"


@pytest.mark.parametrize("offsets, expected", [
    ([0], []),  # no chunks
    ([0, 0, 0], [-1.0, -1.0]),  # chunks without units
    ([0, 1, 1, 3], [1.0, -1.0, 0.0]),  # a chunk without units between two with
])
def test_best_cosine_per_chunk(offsets, expected):
    vectors = np.eye(3, dtype=np.float32)[: offsets[-1]]
    units = UnitVectors(np.array(offsets), vectors)
    assert units.best_cosine(np.array([1.0, 0.0, 0.0], np.float32)).tolist() == expected


def test_only_the_newest_bundles_are_kept(tmp_path):
    for i in range(KEEP_BUNDLES + 3):
        load_unit_vectors([f"chunk-{i}"], ["text"], [{}], lambda text, meta: ["unit"], lambda texts: [[1.0, 0.0]],
                          bundle_folder=tmp_path, namespace="model")
    assert len(list(tmp_path.glob("*.npz"))) == KEEP_BUNDLES
    assert bundle_path(tmp_path, "model", [f"chunk-{KEEP_BUNDLES + 2}"]).exists()
