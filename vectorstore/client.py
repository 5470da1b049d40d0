"""One chromadb client from settings: embedded (``PersistentClient``) or a server (``HttpClient``)."""

from __future__ import annotations

from pathlib import Path

from vectorstore.errors import StoreUnavailableError

__all__ = ["make_client", "COLLECTION_CONFIGURATION"]

COLLECTION_CONFIGURATION = {"hnsw": {"space": "cosine"}}


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
