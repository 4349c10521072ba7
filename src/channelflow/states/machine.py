"""The one shared `transitions` Machine per lifecycle.

Models are never registered with the machine: the engine passes a case object to
``trigger``, so one machine serves every referral and holds no per-row state. Guards and
effects are named callbacks resolved on that case object (``passes_guard`` and
``apply_effects``), which keeps this package free of workflow code.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from transitions import Machine

from channelflow.states.referral import REFERRAL_LIFECYCLE
from channelflow.states.spec import Lifecycle

GUARD_CALLBACK = "passes_guard"
EFFECTS_CALLBACK = "apply_effects"


def build_machine(lifecycle: Lifecycle) -> Machine:
    transitions: list[dict[str, Any]] = [
        {
            "trigger": spec.name,
            "source": list(spec.sources),
            "dest": spec.dest,
            "conditions": [GUARD_CALLBACK],
            "after": [EFFECTS_CALLBACK],
        }
        for spec in lifecycle.events
    ]
    return Machine(
        model=None,
        states=list(lifecycle.states),
        transitions=transitions,
        initial=lifecycle.initial,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
        name=lifecycle.name,
    )


@cache
def referral_machine() -> Machine:
    return build_machine(REFERRAL_LIFECYCLE)
