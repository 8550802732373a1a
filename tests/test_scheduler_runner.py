"""The scheduler's own logging: an expected overlap of a long-running job is not a warning."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from scheduler.runner import _ExpectedOverlap


def _skipped(job_id: str) -> logging.LogRecord:
    """The record APScheduler 3 logs when a tick finds the job's last run still busy."""
    return logging.LogRecord(
        "apscheduler.scheduler",
        logging.WARNING,
        __file__,
        1,
        'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
        (SimpleNamespace(id=job_id), 1),
        None,
    )


def test_a_busy_reply_run_is_not_reported_but_other_jobs_are():
    overlap = _ExpectedOverlap()
    assert not overlap.filter(_skipped("process_replies"))
    # A deadline sweep or the dispatcher still busy at its next tick is worth a warning.
    assert overlap.filter(_skipped("sweep_due_deadlines"))
    assert overlap.filter(_skipped("dispatch_outbox"))
    other = logging.LogRecord("apscheduler.scheduler", logging.WARNING, __file__, 1, "x", (), None)
    assert overlap.filter(other)
