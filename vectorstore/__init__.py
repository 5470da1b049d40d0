"""Embeddings, Chroma, BM25 and hybrid retrieval over chunk documents.

Names are imported lazily (PEP 562): the query path must not pay for
langchain-chroma or sentence-transformers imports it does not use.
"""

from importlib import import_module

__all__ = [
    "LocalEmbeddings", "load_embedder",
    "VectorStoreError", "CorruptIndexError", "IndexNotBuiltError", "StoreUnavailableError",
    "IndexReport", "Indexer", "IndexStatus", "NotesSync",
    "HybridRetriever", "Mode", "SearchResult", "Snapshot",
    "make_client",
]

_WHERE = {
    "LocalEmbeddings": "embeddings", "load_embedder": "embeddings",
    "VectorStoreError": "errors", "CorruptIndexError": "errors", "IndexNotBuiltError": "errors", "StoreUnavailableError": "errors",
    "IndexReport": "indexer", "Indexer": "indexer", "IndexStatus": "sync", "NotesSync": "sync",
    "HybridRetriever": "retriever", "Mode": "retriever", "SearchResult": "retriever", "Snapshot": "retriever",
    "make_client": "client",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"vectorstore.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'vectorstore' has no attribute {name!r}")
