from __future__ import annotations

import pytest

from channelflow.audit.verify import verify_chain
from channelflow.runtime import Runtime
from channelflow.states import REFERRAL_LIFECYCLE
from channelflow.workflow import views
from channelflow.workflow.engine import Workflow
from tests.factories import COORDINATOR, referral_in


@pytest.mark.parametrize("state", REFERRAL_LIFECYCLE.states)
def test_factories_reach_every_state(workflow: Workflow, runtime: Runtime, state: str) -> None:
    reference = referral_in(workflow, state)
    view = views.show_case(workflow, reference, by=COORDINATOR)
    assert view["state"] == state
    assert view["version"] == len(view["history"])
    assert verify_chain(runtime.engine, runtime.key).count >= len(view["history"])
