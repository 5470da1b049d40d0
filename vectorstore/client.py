"""One chromadb client from settings: embedded (``PersistentClient``) or a server (``HttpClient``)."""

from __future__ import annotations

from pathlib import Path

from vectorstore.errors import StoreUnavailableError

__all__ = ["make_client", "server_unavailable", "is_connection_error", "is_storage_error", "COLLECTION_CONFIGURATION"]

COLLECTION_CONFIGURATION = {"hnsw": {"space": "cosine"}}


def server_unavailable(host: str, port: int, cause: BaseException | None = None) -> StoreUnavailableError:
    """The one-line error for a Chroma server that cannot be reached, with the ways to fix it."""
    why = f" ({cause})" if cause else ""
    return StoreUnavailableError(
        f"cannot reach the Chroma server at {host}:{port}{why}; start it with "
        f"`chroma run --path DIR --host {host} --port {port}`, correct --chroma-host/--chroma-port "
        "(NOTES_ASSISTANT_CHROMA_HOST/PORT), or unset NOTES_ASSISTANT_CHROMA_HOST to use the embedded store"
    )


def is_connection_error(error: BaseException) -> bool:
    """True for the errors a Chroma server that went away raises mid-session (httpx transport errors)."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx ships with chromadb
        return False
    return isinstance(error, httpx.TransportError)


def is_storage_error(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) is the store failing to write: a full disk, an I/O error,
    an error inside Chroma or the record manager's SQLite — as opposed to a bug or an embedder failure."""
    from chromadb.errors import ChromaError
    from sqlalchemy.exc import OperationalError

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (OSError, ChromaError, OperationalError)) and not is_connection_error(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def make_client(data_dir: Path, host: str = "", port: int = 8000):
    """A chromadb client: ``PersistentClient`` under ``data_dir/chroma``, or ``HttpClient`` when ``host`` is set.

    Telemetry is switched off here, by the product, so no call leaves the machine.

    Raises:
        StoreUnavailableError: ``host`` is set and no Chroma server answers there.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    # A fresh Settings per client: chromadb writes the server's port into the object it is given.
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if host:
        try:
            return chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
        except Exception as e:  # chromadb raises a plain ValueError ("Could not connect…") or httpx errors
            raise server_unavailable(host, port) from e
    path = Path(data_dir) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
