"""Engine and session handling for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import Depends
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from service.config import get_settings
from service.tables import metadata as metadata  # stable constraint names (tables.py)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_FALLBACK_CHECKPOINT_PAGES = 100_000
CHECKPOINT_INTERVAL_S = 1.0

log = logging.getLogger(__name__)


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the operator used."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache per connection instead of SQLite's 2 MiB: a registry of 100,000
    # residents and their rounds' indexes does not fit in 2 MiB, and a round's fan-out then
    # re-reads index pages from the OS. Memory is taken only as pages are used.
    cursor.execute("PRAGMA cache_size=-65536")
    # The engine's checkpointer thread (WalCheckpointer) copies the WAL into the database
    # in the background, so no committing writer (a webhook, a fan-out's chunk) pays for a
    # checkpoint. A writer checkpoints itself only if the WAL reaches this size all the
    # same (~400 MB: the thread is not keeping up, or a process has none). The file is cut
    # back to 64 MiB once it is reset, so it does not stay at its largest size.
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_FALLBACK_CHECKPOINT_PAGES}")
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.close()


class WalCheckpointer(threading.Thread):
    """Checkpoints a SQLite database's write-ahead log every second, on its own connection.

    SQLite's default is that the writer whose commit takes the WAL past a threshold copies
    it into the database then and there, inside that writer's call: a webhook's reply could
    wait for a fan-out's 40 MB. A PASSIVE checkpoint runs beside readers and writers and
    never waits for them; what it cannot copy yet, the next one does. Two processes' threads
    take turns (the one that finds a checkpoint running skips its turn).
    """

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_S) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        # mode=rw: a database that was deleted is not created again, empty, by this thread.
        uri = f"{Path(self.path).absolute().as_uri()}?mode=rw"
        connection: sqlite3.Connection | None = None
        while not self.stopping.wait(self.interval):
            try:
                if connection is None:
                    connection = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                # Busy (another checkpoint), or the file is gone; the next turn tries again,
                # and a writer still checkpoints at the fallback size.
                log.debug("WAL checkpoint skipped: %s", exc)
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()


# Each engine's checkpointer, with the process it runs in: a child process forked from one
# that had started it has the engine but not the thread, and starts its own.
_checkpointers: weakref.WeakKeyDictionary[Engine, tuple[int, WalCheckpointer]] = (
    weakref.WeakKeyDictionary()
)
_checkpointers_lock = threading.Lock()


def _ensure_checkpointer(engine: Engine) -> None:
    """One checkpointer per engine of a SQLite file and process: started by the first new
    connection that finds none alive in this process (so again after a fork, or if the
    thread died), stopped when the engine is garbage collected."""
    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with _checkpointers_lock:
        running = _checkpointers.get(engine)
        if running is not None and running[0] == os.getpid() and running[1].is_alive():
            return
        checkpointer = WalCheckpointer(path)
        _checkpointers[engine] = (os.getpid(), checkpointer)
        weakref.finalize(engine, checkpointer.stop)
        checkpointer.start()


def make_engine(url: str) -> Engine:
    # Every table must be known before the first flush, or foreign keys cannot be resolved:
    # ``service.models`` is imported where the process is put together (service/bootstrap.py,
    # the migrations' env.py), not here, so that the database layer imports no domain.
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,
        )
        event.listen(engine, "connect", _configure_sqlite)
        engine_ref = weakref.ref(engine)  # the listener must not keep the engine alive

        def checkpointed(*_: object) -> None:
            if (live := engine_ref()) is not None:
                _ensure_checkpointer(live)

        event.listen(engine, "connect", checkpointed)
        return engine
    # hide_parameters: a logged database error must not carry message bodies or numbers.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True
    )


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


def get_session() -> Iterator[Session]:
    with Session(get_engine()) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session for flows and jobs: commit on success, roll back and re-raise on error."""
    with Session(engine or get_engine()) as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
