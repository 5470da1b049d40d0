"""Embeddings, Chroma, BM25 and hybrid retrieval over chunk documents."""

from vectorstore.embeddings import LocalEmbeddings, load_embedder
from vectorstore.errors import CorruptIndexError, IndexNotBuiltError, StoreUnavailableError
from vectorstore.indexer import IndexReport, Indexer
from vectorstore.retriever import HybridRetriever, Mode, SearchResult, Snapshot
from vectorstore.store import NotesChroma, make_client

__all__ = [
    "LocalEmbeddings", "load_embedder",
    "CorruptIndexError", "IndexNotBuiltError", "StoreUnavailableError",
    "IndexReport", "Indexer",
    "HybridRetriever", "Mode", "SearchResult", "Snapshot",
    "NotesChroma", "make_client",
]
