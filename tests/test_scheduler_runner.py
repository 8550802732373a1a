"""The scheduler's wiring: its fixed jobs and their settings, and its own logging (an expected
overlap of a long-running job is not a warning)."""

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


def test_the_scheduler_holds_only_its_fixed_jobs_set_for_catching_up(engine, monkeypatch):
    """build_scheduler adds a few recurring jobs with fixed ids, each with
    replace_existing; coalesce, one instance and a misfire grace are set on purpose.
    Nothing per resident: the jobs are exactly the fixed list."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from scheduler import runner
    from scheduler.jobs import JOBS, JobContext
    from service.clock import get_clock
    from service.config import get_settings

    added: list[dict] = []

    class Recording(BackgroundScheduler):
        def add_job(self, func, *args, **kwargs):  # type: ignore[no-untyped-def]
            added.append(kwargs)
            return super().add_job(func, *args, **kwargs)

    monkeypatch.setattr(runner, "BackgroundScheduler", Recording)
    ctx = JobContext(engine=engine, clock=get_clock(), settings=get_settings(), provider=None)
    scheduler = runner.build_scheduler(ctx)
    scheduler.start(paused=True)  # the job defaults apply once the scheduler starts
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert sorted(jobs) == sorted(job_id for job_id, _f, _s in JOBS)
        assert [kwargs["id"] for kwargs in added] == [job_id for job_id, _f, _s in JOBS]
        assert all(kwargs["replace_existing"] is True for kwargs in added)
        for job in jobs.values():
            assert job.coalesce is True
            assert job.misfire_grace_time == 60
            assert job.max_instances == 1
    finally:
        scheduler.shutdown(wait=False)
