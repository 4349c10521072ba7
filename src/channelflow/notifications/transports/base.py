"""What every mail transport does: send one rendered email and say what happened.

``send`` returns the provider's id for the message, or raises one of the delivery errors in
``channelflow.exceptions``: transient (try again later), outcome unknown (the provider may
have it), transport unavailable (nothing can go now) or permanent (never retry).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from channelflow.notifications.message import Email


class Transport(ABC):
    name: str

    @abstractmethod
    def send(self, email: Email, *, outcome_unknown: bool) -> str:
        """Deliver ``email``; ``outcome_unknown`` says an earlier attempt may have reached
        the provider, so a transport that can look that up should before sending again."""

    @property
    def timeout(self) -> float:
        """The longest one send may take, which a dispatcher's lease must outlast."""
        return 30.0

    def close(self) -> None:
        """Release any connection kept open between sends (none, unless overridden)."""
        return None
