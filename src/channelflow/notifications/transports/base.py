"""What every mail transport does: send one rendered email and say what happened.

``send`` returns the provider's id for the message, or raises one of the delivery errors in
``channelflow.exceptions``: transient (try again later), outcome unknown (the provider may
have it), transport unavailable (nothing can go now) or permanent (never retry).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from channelflow.notifications.message import Email


class Transport(ABC):
    name: str

    @abstractmethod
    def send(
        self,
        email: Email,
        *,
        outcome_unknown: bool,
        while_waiting: Callable[[], None] = lambda: None,
    ) -> str:
        """Deliver ``email``; ``outcome_unknown`` says an earlier attempt may have reached
        the provider, so a transport that can look that up should before sending again.

        ``while_waiting`` must be called before anything of ``email`` can be delivered,
        ideally while the provider works on a first request (the dispatcher records the
        previous message's result there, in time that would otherwise be spent waiting).
        """

    @property
    def timeout(self) -> float:
        """The longest one network operation may take."""
        return 30.0

    @property
    def longest_send(self) -> float:
        """The longest one ``send`` may take, in seconds; a claim's lease must outlast it."""
        return self.timeout

    def close(self) -> None:
        """Release any connection kept open between sends (none, unless overridden)."""
        return None
