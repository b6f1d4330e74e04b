"""Dead letters of the memory bus, kept on disk so that a restart does not lose them.

On RabbitMQ a dead letter waits in its durable ``<queue>.dlq`` until an operator replays it. The
memory transport keeps its queues in the process, so the embedded platform writes every dead
letter into ``bus-dead-letters.sqlite3`` in its data directory as well, puts them back into
their dead-letter queues when it starts, and lets go of a row once its message is replayed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.common.sqlite import SqliteDatabase

FILE_NAME = "bus-dead-letters.sqlite3"
# The header that ties a dead letter on the memory bus to its row.
KEPT_HEADER = "x-yingji-kept"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " queue TEXT NOT NULL,"
    " body BLOB NOT NULL,"
    " content_type TEXT,"
    " content_encoding TEXT,"
    " headers TEXT NOT NULL,"
    " message_id TEXT,"
    " kept_at REAL NOT NULL)",
)


@dataclass(frozen=True)
class KeptLetter:
    """One dead letter as kept: enough to publish it again exactly as it was."""

    id: int
    queue: str
    body: bytes
    content_type: str | None
    content_encoding: str | None
    headers: dict[str, Any]
    message_id: str | None


class KeptDeadLetters:
    """The repository of the memory bus's dead letters (SQLite only: the memory bus is embedded)."""

    def __init__(self, data_dir: Path) -> None:
        self.db = SqliteDatabase(data_dir / FILE_NAME)
        self.db.script(SCHEMA)

    def keep(
        self,
        queue: str,
        body: str | bytes,
        content_type: str | None,
        content_encoding: str | None,
        headers: dict[str, Any],
        message_id: str | None,
    ) -> int:
        """Write a dead letter down; its row id, to carry in its headers."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO dead_letters (queue, body, content_type, content_encoding, headers,"
                " message_id, kept_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    queue,
                    raw,
                    content_type,
                    content_encoding,
                    json.dumps(headers, ensure_ascii=False, default=str),
                    message_id,
                    time.time(),
                ),
            )
            return int(cursor.lastrowid or 0)

    def waiting(self) -> list[KeptLetter]:
        """Every dead letter not replayed yet, oldest first."""
        rows = self.db.query(
            "SELECT id, queue, body, content_type, content_encoding, headers, message_id"
            " FROM dead_letters ORDER BY id"
        )
        return [
            KeptLetter(row[0], row[1], bytes(row[2]), row[3], row[4], json.loads(row[5]), row[6])
            for row in rows
        ]

    def release(self, kept_id: int) -> None:
        """The letter went back to its queue: it is no longer the operator's to replay."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM dead_letters WHERE id = ?", (kept_id,))

    def close(self) -> None:
        """Close the file."""
        self.db.close()
