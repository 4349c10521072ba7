"""`channelflow run`: planning and dispatch jobs on APScheduler 3, built in memory at start.

There is no job store: the database is the source of truth. A planning job derives what has
fallen due (`planning.planner`) and queues it in the outbox; a dispatch job drains the outbox.
Both run on one worker thread, so a pass never overlaps another in the same process; other
processes are kept apart by the planning lock and the outbox's row claims.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from channelflow import clock
from channelflow.config import ScheduleSettings
from channelflow.exceptions import ChannelflowError
from channelflow.notifications import Dispatcher, PassReport
from channelflow.planning.planner import Planner, PlanReport

log = logging.getLogger("channelflow.scheduler")


@dataclass(frozen=True)
class RunReport:
    plan: PlanReport
    dispatch: PassReport


class Scheduler:
    def __init__(
        self,
        planner: Planner,
        dispatcher: Callable[[], Dispatcher],
        schedule: ScheduleSettings,
    ) -> None:
        self.planner = planner
        self.dispatcher = dispatcher
        self.schedule = schedule
        self.stopping = threading.Event()

    def plan(self, *, dry_run: bool = False) -> PlanReport:
        report = self.planner.plan(now=clock.now(), dry_run=dry_run)
        log.info("%s", report.describe())
        if report.no_email:
            log.warning("not emailed, no email address: %s", ", ".join(sorted(report.no_email)))
        return report

    def dispatch(self) -> PassReport:
        report = self.dispatcher().run_once(stop=self.stopping)
        if report.sent or report.failed or report.dead:
            log.info(
                "sent %d, failed %d (to retry), dead %d",
                len(report.sent),
                len(report.failed),
                len(report.dead),
            )
        if report.stopped_because is not None:
            log.warning("sending paused: %s; queued email is retried later", report.stopped_because)
        return report

    def run_once(self) -> RunReport:
        """One planning pass and one dispatch pass, at the clock's instant."""
        return RunReport(self.plan(), self.dispatch())

    def run_forever(self) -> None:
        """Run until :meth:`stop`; a pass in progress finishes the message it is sending."""
        # Only the long-running process needs APScheduler; `run --once` and every other
        # command start without it.
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        start = datetime.now(UTC)
        scheduler.add_job(
            self._job(self.run_once),
            IntervalTrigger(minutes=self.schedule.plan_every_minutes, timezone=UTC),
            id="plan",
            name="planning and sending",
            next_run_time=start,
        )
        scheduler.add_job(
            self._job(self.dispatch),
            IntervalTrigger(seconds=self.schedule.dispatch_every_seconds, timezone=UTC),
            id="dispatch",
            name="sending",
        )
        scheduler.start()
        log.info(
            "running: planning every %d min, sending every %d s",
            self.schedule.plan_every_minutes,
            self.schedule.dispatch_every_seconds,
        )
        try:
            self.stopping.wait()
        finally:
            scheduler.shutdown(wait=True)
            log.info("stopped")

    def stop(self) -> None:
        self.stopping.set()

    def _job(self, work: Callable[[], object]) -> Callable[[], None]:
        def job() -> None:
            if self.stopping.is_set():
                return
            try:
                work()
            except ChannelflowError as error:
                # The next pass tries again; the process stays up for what it can do.
                log.error("%s", error.message)
            except Exception as error:
                log.error("unexpected %s in a pass; it is retried", type(error).__name__)

        return job
