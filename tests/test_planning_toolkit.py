"""The toolkit's process reviews: the report's 2019 table, and time moved to October 2019."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channelflow import clock
from channelflow.runtime import Runtime
from channelflow.store.db import read_session
from channelflow.store.models import OutboxMessage
from channelflow.toolkit import Toolkit
from tests.conftest import make_runtime
from tests.factories import COORDINATOR

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "toolkit-2019.toml"
# The report is dated 4 July 2019; channelflow starts the day after.
STARTED = datetime(2019, 7, 5, 9, 0, tzinfo=clock.LOCAL_ZONE)


@pytest.fixture
def runtime_2019(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    with clock.frozen_at(STARTED):
        rt = make_runtime(database_url, tmp_path / "audit.key")
        Toolkit(rt.workflow).load(EXAMPLE, default_owner=COORDINATOR, by=COORDINATOR)
    yield rt
    rt.close()


def plan_daily(rt: Runtime, first: date, last: date) -> None:
    day = first
    while day <= last:
        instant = datetime.combine(day, time(9, 0), clock.LOCAL_ZONE)
        with clock.frozen_at(instant):
            rt.planner.plan(now=instant)
        day += timedelta(days=1)


def process_reminders(rt: Runtime) -> list[tuple[str, str]]:
    with read_session(rt.engine) as session:
        rows = session.execute(
            select(OutboxMessage.recipient, OutboxMessage.created_at)
            .where(OutboxMessage.kind == "process_review_reminder")
            .order_by(OutboxMessage.created_at, OutboxMessage.id)
        ).all()
    return [(recipient, clock.local_date(at).isoformat()) for recipient, at in rows]


def test_advancing_to_october_2019_sends_the_six_month_review_reminders(
    runtime_2019: Runtime,
) -> None:
    plan_daily(runtime_2019, date(2019, 9, 1), date(2019, 10, 31))
    owner = f"{COORDINATOR}@example.org"
    # Referral Process and Channel Panel: "6 month review ... in Oct 19" (1 October, a
    # Tuesday): a week before (Tuesday 24 September) and on the day.
    assert process_reminders(runtime_2019) == [
        (owner, "2019-09-24"),
        (owner, "2019-09-24"),
        (owner, "2019-10-01"),
        (owner, "2019-10-01"),
    ]


def test_a_recorded_review_sets_the_next_six_months_on_and_reminds_before_it(
    runtime_2019: Runtime,
) -> None:
    plan_daily(runtime_2019, date(2019, 9, 20), date(2019, 10, 1))
    toolkit = Toolkit(runtime_2019.workflow)
    actions = [
        action["id"]
        for benchmark in toolkit.list()
        for action in benchmark["actions"]
        if action["review_on"] == date(2019, 10, 1)
    ]
    assert len(actions) == 2
    with clock.frozen_at(datetime(2019, 10, 1, 15, 0, tzinfo=clock.LOCAL_ZONE)):
        toolkit.action_done(actions[0], by=COORDINATOR)
    plan_daily(runtime_2019, date(2019, 10, 2), date(2020, 4, 2))
    dates = [day for _, day in process_reminders(runtime_2019)]
    # The reviewed action comes round again on 1 April 2020 (a Wednesday; reminded on 25 March);
    # the other one was never recorded, so nothing more is sent for it.
    assert dates == [
        "2019-09-24",
        "2019-09-24",
        "2019-10-01",
        "2019-10-01",
        "2020-03-25",
        "2020-04-01",
    ]
