"""One active scheduler. On PostgreSQL a session advisory lock elects it: the lock lives as
long as the leader's connection, so a killed leader frees it at once and a standby polling
every couple of seconds takes over. On SQLite a file lock does the same on one machine."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# Any fixed 64-bit number; it names "the Mimamori scheduler" among advisory locks.
ADVISORY_LOCK_KEY = 0x6D696D616D6F7269 & 0x7FFFFFFFFFFFFFFF


class LeaderLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self._file: int | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            connection = self.engine.connect()
            try:
                got = connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
                ).scalar()
                connection.commit()
            except Exception:
                connection.close()
                raise
            if got:
                self._connection = connection
                return True
            connection.close()
            return False
        path = self._lock_path()
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._file = fd
        return True

    def still_held(self) -> bool:
        """A leader that lost its database connection has lost the lock too: it must stop."""
        if self._connection is None:
            return self._file is not None
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
            return True
        except Exception:
            log.exception("lost the scheduler lock's connection")
            self.release()
            return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
            self._connection = None
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def _lock_path(self) -> Path:
        database = self.engine.url.database or "mimamori"
        if database in ("", ":memory:"):
            return Path(os.environ.get("TMPDIR", "/tmp")) / "mimamori-scheduler.lock"
        return Path(f"{database}.scheduler.lock")
