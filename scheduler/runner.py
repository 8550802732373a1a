"""APScheduler 3.x wiring and the leader loop."""

from __future__ import annotations

import logging
import threading
import time

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from scheduler.jobs import JOBS, JobContext
from scheduler.leader import LeaderLock

log = logging.getLogger(__name__)
STANDBY_POLL_SECONDS = 2.0


# Jobs that run until their work is done, on a short interval: a tick that finds the last
# run still busy is expected (the running one takes what that tick would have), not news.
LONG_RUNNING_OK = frozenset({"process_replies"})


class _ExpectedOverlap(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances reached" warning
    for the jobs above; it would otherwise be logged four times a second in a burst."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances" not in str(record.msg):
            return True
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return getattr(job, "id", None) not in LONG_RUNNING_OK


_OVERLAP_FILTER = _ExpectedOverlap()


def build_scheduler(ctx: JobContext) -> BackgroundScheduler:
    # coalesce: after downtime a job runs once, not once per missed interval: the sweep
    # itself processes everything overdue, in deadline order. misfire_grace_time: a run that
    # is late by up to a minute still runs; later than that, the next interval covers it.
    apscheduler_log = logging.getLogger("apscheduler.scheduler")
    if _OVERLAP_FILTER not in apscheduler_log.filters:
        apscheduler_log.addFilter(_OVERLAP_FILTER)
    scheduler = BackgroundScheduler(
        timezone="UTC",
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    for job_id, function, seconds in JOBS:
        scheduler.add_job(
            function,
            "interval",
            seconds=seconds,
            args=[ctx],
            id=job_id,
            name=job_id,
            replace_existing=True,
        )
    return scheduler


def run(ctx: JobContext, stop: threading.Event) -> None:
    """Wait to become the leader, then run the jobs until stopped or the lock is lost."""
    lock = LeaderLock(ctx.engine)
    announced = False
    while not stop.is_set():
        try:
            if lock.try_acquire():
                break
        except Exception:
            log.exception("could not reach the database for the scheduler lock")
        if not announced:
            log.info("another scheduler is active; standing by")
            announced = True
        stop.wait(STANDBY_POLL_SECONDS)
    if stop.is_set():
        return
    log.info("this scheduler is now active", extra={"event": "scheduler.leader"})
    scheduler = build_scheduler(ctx)
    # Catch up at once: anything that fell due while no scheduler ran is processed now.
    for job_id, function, _seconds in JOBS:
        try:
            function(ctx)
        except Exception:
            log.exception("catch-up run of %s failed", job_id)
    scheduler.start()
    try:
        while not stop.is_set():
            stop.wait(STANDBY_POLL_SECONDS)
            if not lock.still_held():
                log.error("lost the scheduler lock; stopping so another can take over")
                break
    finally:
        scheduler.shutdown(wait=True)
        ctx.close()
        lock.release()


def start_in_thread(ctx: JobContext) -> tuple[threading.Thread, threading.Event]:
    """For the embedded default: `mimamori serve` on SQLite runs the scheduler in-process."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(ctx, stop), daemon=True, name="scheduler")
    thread.start()
    return thread, stop


def wait_forever(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(0.5)
