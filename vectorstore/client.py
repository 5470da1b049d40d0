"""One chromadb client from settings: embedded (``PersistentClient``) or a server (``HttpClient``)."""

from __future__ import annotations

import re
from pathlib import Path

from vectorstore.errors import REPAIR_HINT, DamagedIndexError, StoreUnavailableError

__all__ = [
    "make_client", "server_unavailable", "is_connection_error", "is_storage_error", "is_damage_error",
    "damage_detail", "damaged_store", "is_embedded", "COLLECTION_CONFIGURATION",
]

# What SQLite says about a torn or foreign database file (Chroma passes the text through).
_DAMAGE_MESSAGES = ("database disk image is malformed", "file is not a database", "(code: 11)", "(code: 26)")

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


def is_damage_error(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) is SQLite finding a damaged database file (Chroma's or ours).

    >>> is_damage_error(RuntimeError("error returned from database: (code: 11) database disk image is malformed"))
    True
    >>> is_damage_error(RuntimeError("No space left on device"))
    False
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DamagedIndexError) or any(m in str(error) for m in _DAMAGE_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def damage_detail(error: BaseException | str) -> str:
    """SQLite's reason, without Chroma's wrapping.

    >>> damage_detail(RuntimeError("error returned from database: (code: 11) database disk image is malformed"))
    'database disk image is malformed'
    """
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else type(error).__name__
    return re.sub(r"^(error returned from database: )?(\(code: \d+\) )?", "", first)[:200]


def damaged_store(path: Path, cause: BaseException | str) -> DamagedIndexError:
    """The one-line error for a damaged embedded Chroma store at ``path``, with the fix."""
    detail = damage_detail(cause)
    return DamagedIndexError(f"the Chroma store {path} is damaged ({detail}); {REPAIR_HINT}", detail)


def is_embedded(client) -> bool:
    """True for a client on a store in a local folder (``PersistentClient``), False for a server."""
    try:
        return bool(client.get_settings().is_persistent)
    except Exception:  # a client without settings (a test double): treat as a server, the cautious side
        return False


def make_client(data_dir: Path, host: str = "", port: int = 8000):
    """A chromadb client: ``PersistentClient`` under ``data_dir/chroma``, or ``HttpClient`` when ``host`` is set.

    Telemetry is switched off here, by the product, so no call leaves the machine.

    Raises:
        StoreUnavailableError: ``host`` is set and no Chroma server answers there.
        DamagedIndexError: the embedded store's database file is empty, foreign or torn.
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
    database = path / "chroma.sqlite3"
    try:
        # Chroma would silently turn an empty file into a new, empty store: the index
        # would look built and answer nothing. Say so instead.
        # (An empty file in a data dir without a manifest is a store another process is creating.)
        with open(database, "rb") as f:
            header = f.read(16)
        if header and header != b"SQLite format 3\x00":
            raise damaged_store(database, "not a SQLite database")
        if not header and (Path(data_dir) / "manifest.json").exists():
            raise damaged_store(database, "empty file")
    except FileNotFoundError:
        pass  # a new store: Chroma creates it
    try:
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as e:
        if is_damage_error(e):
            raise damaged_store(database, e) from e
        raise
