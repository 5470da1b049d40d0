"""The record manager: langchain's ``SQLRecordManager`` on SQLite, with a faster ``update``.

langchain's ``index()`` refreshes the timestamp of every unchanged chunk of a
source it is given, twice per run; ``SQLRecordManager.update`` compiles one
giant multi-row INSERT for that, which costs ~0.25 s per 800 keys here. This
subclass sends the same upsert through ``executemany`` (one prepared statement),
~20x faster, with the same table, the same semantics and the same time-sync guard.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from langchain_classic.indexes import SQLRecordManager

__all__ = ["RecordManager", "open_record_manager"]

_UPSERT = (
    "INSERT INTO upsertion_record (uuid, key, namespace, group_id, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key, namespace) DO UPDATE SET updated_at = excluded.updated_at, group_id = excluded.group_id"
)


class RecordManager(SQLRecordManager):
    """``SQLRecordManager`` (SQLite) with a prepared-statement ``update`` and a key → group listing."""

    def update(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        if self.dialect != "sqlite":
            return super().update(keys, group_ids=group_ids, time_at_least=time_at_least)
        if group_ids is None:
            group_ids = [None] * len(keys)
        if len(keys) != len(group_ids):
            raise ValueError(f"Number of keys ({len(keys)}) does not match number of group_ids ({len(group_ids)})")
        update_time = self.get_time()
        if time_at_least and update_time < time_at_least:
            raise AssertionError(f"Time sync issue: {update_time} < {time_at_least}")  # as SQLRecordManager does
        rows = [(str(uuid.uuid4()), key, self.namespace, group, update_time) for key, group in zip(keys, group_ids)]
        if rows:
            with self.engine.begin() as connection:  # one transaction: all keys or none
                connection.exec_driver_sql(_UPSERT, rows)
        return None

    def groups(self) -> dict[str, str | None]:
        """Every key of this namespace with its group id (the chunk's source)."""
        with self.engine.connect() as connection:
            result = connection.exec_driver_sql(
                "SELECT key, group_id FROM upsertion_record WHERE namespace = ?", (self.namespace,)
            )
            return {key: group for key, group in result}


def open_record_manager(db: Path, namespace: str) -> RecordManager:
    """The record manager stored in ``db`` (SQLite), schema created if missing."""
    manager = RecordManager(namespace, db_url=f"sqlite:///{db}")
    manager.create_schema()
    return manager
