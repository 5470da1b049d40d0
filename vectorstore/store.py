"""Chroma: one client built from settings (embedded or server), one collection in cosine space.

``NotesChroma`` is ``langchain_chroma.Chroma`` with one change: it embeds each
chunk *with its heading path* on the first line while storing the chunk's
original lines as the document text.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from langchain_chroma import Chroma
from langchain_core.documents import Document

from vectorstore.errors import StoreUnavailableError

__all__ = ["make_client", "NotesChroma", "open_store", "embed_text_of"]

logger = logging.getLogger(__name__)


def make_client(data_dir: Path, host: str = "", port: int = 8000):
    """A chromadb client: ``PersistentClient`` under ``data_dir/chroma``, or ``HttpClient`` when ``host`` is set.

    Telemetry is switched off here, by the product, so no call leaves the machine.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if host:
        try:
            return chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
        except Exception as e:  # chromadb raises plain ValueError/ConnectionError variants
            raise StoreUnavailableError(
                f"cannot reach the Chroma server at {host}:{port} ({e}); start it with "
                f"`chroma run --path DIR --host {host} --port {port}` or unset NOTES_ASSISTANT_CHROMA_HOST"
            ) from e
    path = Path(data_dir) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def embed_text_of(document: Document) -> str:
    """Heading path on the first line, then the chunk text (what is embedded and BM25-indexed)."""
    heading = document.metadata.get("heading", "")
    return f"{heading}\n{document.page_content}" if heading else document.page_content


class NotesChroma(Chroma):
    """Chroma that embeds heading-path-prefixed text but stores the original chunk lines."""

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        ids = kwargs.get("ids") or [doc.id for doc in documents]
        if not documents:
            return []
        batch = 256
        for start in range(0, len(documents), batch):
            docs = documents[start : start + batch]
            vectors = self.embeddings.embed_documents([embed_text_of(d) for d in docs])
            self._collection.upsert(
                ids=list(ids[start : start + batch]),
                embeddings=vectors,
                documents=[d.page_content for d in docs],
                metadatas=[d.metadata for d in docs],
            )
        return list(ids)


def open_store(client, collection: str, embeddings) -> NotesChroma:
    """The notes collection (created in cosine space when missing)."""
    return NotesChroma(
        client=client,
        collection_name=collection,
        embedding_function=embeddings,
        collection_configuration={"hnsw": {"space": "cosine"}},
    )
