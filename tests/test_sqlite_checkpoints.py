"""SQLite's write-ahead log is checkpointed by a thread of the engine, not by writers."""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text

from service.db import SQLITE_FALLBACK_CHECKPOINT_PAGES, WalCheckpointer, make_engine
from service.db import _checkpointers as _checkpointers_by_engine


def _wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_the_checkpointer_copies_the_log_into_the_database_without_any_writer(tmp_path: Path):
    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # this writer never checkpoints
    writer.execute("CREATE TABLE t (x BLOB)")
    writer.execute("BEGIN")
    for _ in range(500):
        writer.execute("INSERT INTO t VALUES (randomblob(4000))")
    writer.execute("COMMIT")
    size_before = os.path.getsize(path)
    assert os.path.getsize(f"{path}-wal") > 2_000_000  # the rows are in the log only
    assert size_before < 100_000

    checkpointer = WalCheckpointer(str(path), interval=0.05)
    checkpointer.start()
    try:
        assert _wait_for(lambda: os.path.getsize(path) > 2_000_000)
    finally:
        checkpointer.stop()
        checkpointer.join(5)
    assert not checkpointer.is_alive()
    writer.close()


def _checkpointers(path: Path) -> list[WalCheckpointer]:
    """The live checkpointers of one database (other tests' engines may still have theirs,
    until they are collected)."""
    return [
        t
        for t in threading.enumerate()
        if isinstance(t, WalCheckpointer) and t.path == str(path) and t.is_alive()
    ]


def test_an_engine_of_a_sqlite_file_has_one_checkpointer_until_it_is_collected(tmp_path: Path):
    path = tmp_path / "engine.db"
    engine = make_engine(f"sqlite:///{path}")
    assert _checkpointers(path) == []  # none until the engine is first used
    with engine.connect() as connection:
        fallback = connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
        assert fallback == SQLITE_FALLBACK_CHECKPOINT_PAGES
    for _ in range(3):  # a disposed pool's new connections start no second one
        engine.dispose()
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    [started] = _checkpointers(path)

    del engine, connection
    gc.collect()
    started.join(5)
    assert not started.is_alive()


def test_an_in_memory_database_has_no_checkpointer():
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert engine not in _checkpointers_by_engine


def test_the_checkpointer_never_creates_a_database_file(tmp_path: Path):
    """A database that was deleted (or never made) stays absent: the thread opens the file
    read-write only, never "create"."""
    path = tmp_path / "gone.db"
    checkpointer = WalCheckpointer(str(path), interval=0.02)
    checkpointer.start()
    try:
        time.sleep(0.3)  # about fifteen turns, each failing to open the file
        assert checkpointer.is_alive()
        assert not path.exists()
    finally:
        checkpointer.stop()
        checkpointer.join(5)
