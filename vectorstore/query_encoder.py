"""A numpy forward pass of a BERT sentence-transformers model, for embedding *queries* fast.

Why hand-written: on our 2-core machines importing torch + sentence-transformers
takes ~10 s, which would make every ``notes-assistant ask`` wait that long before
answering. Documents are still embedded by sentence-transformers at index time;
a query (a few dozen tokens) needs one small forward pass, which numpy does in
milliseconds after a ~0.3 s start. ``tests/test_query_encoder.py`` asserts the
vectors equal sentence-transformers' to within 1e-5.

Only BERT models with mean pooling and normalisation (all-MiniLM-L6-v2, the
bundled default) qualify; ``NumpyQueryEncoder.supports`` says whether a model
does, and callers fall back to sentence-transformers otherwise.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np

__all__ = ["NumpyQueryEncoder", "SmallBatchEmbeddings", "SMALL_BATCH"]

SMALL_BATCH = 32  # texts per call that the numpy encoder embeds instead of loading torch


def _erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz & Stegun 7.1.26 (max error 1.5e-7), vectorised."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


_blas_limited = False


def _single_threaded_blas() -> None:
    """Limit numpy's BLAS to one thread for this process, once.

    Every numpy product on the query path is tiny (tens of rows); with 2 BLAS threads
    on a busy 2-core machine they wait on each other (measured: one query 277 ms with
    the default pool vs 76 ms with one thread). torch keeps its own thread pool.
    """
    global _blas_limited
    if _blas_limited:
        return
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it we only lose speed
        return
    ThreadpoolController().limit(limits=1, user_api="blas")
    _blas_limited = True


class NumpyQueryEncoder:
    """Embeds one text at a time with the weights of a local BERT sentence-transformers model."""

    def __init__(self, model_path: str) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(model_path)
        config = json.loads((path / "config.json").read_text())
        st_config = json.loads((path / "sentence_bert_config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_length = int(st_config.get("max_seq_length", 256))
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        weights = {k.removeprefix("bert."): v for k, v in load_file(str(path / "model.safetensors")).items()}
        # Linear weights stored transposed once, contiguous: x @ W.T on a view is several times slower.
        self.w = {
            k: np.ascontiguousarray(v.T) if k.endswith(".weight") and v.ndim == 2 and k.startswith("encoder.") else v
            for k, v in weights.items()
        }
        self._lock = threading.Lock()
        _single_threaded_blas()

    @staticmethod
    def supports(model_path: str) -> bool:
        """True for a BERT model with mean pooling + Normalize stored as safetensors."""
        path = Path(model_path)
        try:
            config = json.loads((path / "config.json").read_text())
            modules = json.loads((path / "modules.json").read_text())
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        except (OSError, ValueError):
            return False
        types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        return (
            config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu"
            and types == ["Transformer", "Pooling", "Normalize"]
            and pooling.get("pooling_mode_mean_tokens") is True
            and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens"))
            and (path / "model.safetensors").exists()
            and (path / "tokenizer.json").exists()
        )

    def encode(self, text: str) -> np.ndarray:
        """The normalised sentence embedding of ``text`` (float32, shape (dim,))."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """Normalised sentence embeddings of ``texts`` in one forward pass (float32, shape (n, dim)).

        Texts are padded to the longest; padded positions are masked out of attention
        and of the mean pooling, so each row equals ``encode`` of its text alone. One
        pass over 16 short queries costs far less than 16 passes: the matrix products
        get rows enough to use the BLAS kernels well.
        """
        encoded = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        count, length = len(encoded), max(len(ids) for ids in encoded)
        ids = np.zeros((count, length), dtype=np.int64)
        mask = np.zeros((count, length), dtype=np.float32)
        for row, token_ids in enumerate(encoded):
            ids[row, : len(token_ids)] = token_ids
            mask[row, : len(token_ids)] = 1.0
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        dim = x.shape[-1]
        head_dim = dim // self.heads
        # Python floats below, never numpy float64 scalars: those would turn every activation
        # into float64 and each product into a float64 copy of its weights (3× slower, measured).
        # -inf-like for padded keys: exp() of it is 0, so padding gets no attention.
        key_bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def linear(h: np.ndarray, name: str) -> np.ndarray:
                return h @ w[p + name + ".weight"] + w[p + name + ".bias"]

            def heads(h: np.ndarray) -> np.ndarray:  # (n, L, dim) -> (n, heads, L, head_dim)
                return h.reshape(count, length, self.heads, head_dim).transpose(0, 2, 1, 3)

            q = heads(linear(x, "attention.self.query"))
            k = heads(linear(x, "attention.self.key"))
            v = heads(linear(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + key_bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(count, length, dim)
            x = _layer_norm(
                linear(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps,
            )
            h = linear(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
            x = _layer_norm(
                linear(h, "output.dense") + x,
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps,
            )
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    embed_query_array = encode  # the interface HybridRetriever expects of a query embedder


class SmallBatchEmbeddings:
    """Embeds a few texts with the numpy encoder, many with the full model (loaded only then).

    An edit re-embeds two or three texts: loading torch and sentence-transformers for
    them costs ~5 s of a 7 s ``notes-assistant index`` here, while the numpy encoder
    computes the same vectors (to 1e-5, tests/test_query_encoder.py) in tens of ms
    each. Past ``SMALL_BATCH`` texts per call the model's batched encoding wins.
    A langchain ``Embeddings`` by duck typing (no langchain import on the query path).

    Args:
        numpy_encoder: a ``NumpyQueryEncoder`` for the model.
        load_model: zero-argument callable returning the full embedder (sentence-transformers).
    """

    def __init__(self, numpy_encoder: NumpyQueryEncoder, load_model, small_batch: int = SMALL_BATCH) -> None:
        self.numpy_encoder = numpy_encoder
        self.load_model = load_model
        self.small_batch = small_batch

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if len(texts) <= self.small_batch:
            return self.numpy_encoder.encode_batch(list(texts)).tolist()
        return self.load_model().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.numpy_encoder.encode(text).tolist()
