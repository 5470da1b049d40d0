"""The numpy query encoder computes the same vectors as sentence-transformers (no torch on the query path)."""

from __future__ import annotations

import numpy as np


def test_numpy_query_encoder_matches_sentence_transformers(bundled_engine, embedder):
    from vectorstore.query_encoder import NumpyQueryEncoder

    assert isinstance(bundled_engine.query_encoder, NumpyQueryEncoder)
    for text in ["Why can't my lambda in a VPC reach the internet?", "x", "🙂 émoji ünïcode", "word " * 400]:
        ours = bundled_engine.embed_query(text)
        reference = np.asarray(embedder.embed_query(text), dtype=np.float32)
        assert np.abs(ours - reference).max() < 1e-5


def test_a_padded_batch_gives_each_text_its_own_vector(bundled_engine, embedder):
    """Padding is masked out of attention and pooling: a batch row equals its text encoded alone."""
    texts = ["x", "How many ENIs per region can VPC-attached Lambda functions use?", "word " * 400, "🙂 émoji"]
    batch = bundled_engine.query_encoder.encode_batch(texts)
    reference = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    assert batch.shape == reference.shape and np.abs(batch - reference).max() < 1e-5


def test_the_forward_pass_stays_in_float32(bundled_engine, monkeypatch):
    """A numpy float64 scalar (``np.sqrt(2.0)``) once turned every activation into float64: each product then
    copied its float32 weights to float64 and a query took 2-3x as long. Every layer norm must see float32."""
    from vectorstore import query_encoder

    seen = []
    original = query_encoder._layer_norm

    def recording(x, weight, bias, eps):
        seen.append(x.dtype)
        return original(x, weight, bias, eps)

    monkeypatch.setattr(query_encoder, "_layer_norm", recording)
    bundled_engine.query_encoder.encode_batch(["How do I turn on S3 versioning?", "x"])
    assert seen and set(seen) == {np.dtype(np.float32)}
