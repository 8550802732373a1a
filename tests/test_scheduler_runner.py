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


def test_the_scheduler_holds_only_its_fixed_jobs_set_for_catching_up(engine):
    """A few recurring jobs with fixed ids, added with replace_existing; coalesce and a
    misfire grace set on purpose. Starting a round adds no job: per-resident timing is in
    database columns the sweep reads."""
    from scheduler.jobs import JOBS, JobContext
    from scheduler.runner import build_scheduler
    from service.clock import get_clock
    from service.config import get_settings

    ctx = JobContext(engine=engine, clock=get_clock(), settings=get_settings(), provider=None)
    scheduler = build_scheduler(ctx)
    scheduler.start(paused=True)  # the defaults apply to jobs once the scheduler starts
    try:
        for job_id, function, seconds in JOBS:  # added again, as after a restart: replaced
            scheduler.add_job(
                function, "interval", seconds=seconds, args=[ctx], id=job_id, replace_existing=True
            )
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert sorted(jobs) == sorted(job_id for job_id, _f, _s in JOBS)
        for job in jobs.values():
            assert job.coalesce is True
            assert job.misfire_grace_time == 60
            assert job.max_instances == 1
        _start_a_round(engine)
        assert sorted(job.id for job in scheduler.get_jobs()) == sorted(jobs)
    finally:
        scheduler.shutdown(wait=False)


def _start_a_round(engine) -> None:
    from sqlmodel import Session

    from service.audit.service import Actor
    from service.auth.service import get_or_create_organization
    from service.checkins import flows
    from service.clock import get_clock
    from service.registry import service as registry
    from service.registry.models import ResidentCreate

    with Session(engine) as s:
        org = get_or_create_organization(session=s, name="輪島市社会福祉協議会")
        for n in range(3):
            registry.create_resident(
                session=s,
                organization_id=org.id,
                data=ResidentCreate(
                    external_id=f"R{n}", name=f"住民 {n}", phone=f"090-1000-000{n}"
                ),
                actor=Actor(label="test"),
            )
        s.commit()
        org_id = org.id
    flows.start_broadcast(engine, organization_id=org_id, started_by="test", now_fn=get_clock().now)
