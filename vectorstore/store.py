"""The notes collection as a langchain vector store (what the indexing API writes to).

``NotesChroma`` is ``langchain_chroma.Chroma`` with one change: it embeds each
chunk *with its heading path* on the first line while storing the chunk's
original lines as the document text.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_chroma import Chroma
from langchain_core.documents import Document

from vectorstore.text import embed_text
from vectorstore.client import COLLECTION_CONFIGURATION

__all__ = ["NotesChroma", "open_store", "embed_text_of"]

logger = logging.getLogger(__name__)


def embed_text_of(document: Document) -> str:
    """Heading path on the first line, then the chunk text (what is embedded and BM25-indexed)."""
    return embed_text(document.metadata.get("heading", ""), document.page_content)


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
        collection_configuration=COLLECTION_CONFIGURATION,
    )
