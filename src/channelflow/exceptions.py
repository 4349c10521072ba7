"""Every error channelflow raises on purpose.

Each class's docstring is its default message. Messages name case references, users and
field names, never personal details. The CLI turns these into exit codes; nothing else does.
"""

from __future__ import annotations


class ChannelflowError(Exception):
    """Something went wrong in channelflow."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidInput(ChannelflowError, ValueError):
    """The input is not valid."""


class ConfigurationError(ChannelflowError):
    """channelflow is not configured correctly."""


class NotInitialised(ConfigurationError):
    """The database has no channelflow schema yet; run `channelflow init` first."""


class AuditKeyError(ConfigurationError):
    """The audit key file is missing or does not belong to this database."""


class TemplateError(ConfigurationError):
    """An email template is missing or broken; run `channelflow templates check`."""


class MailConfigurationError(ConfigurationError):
    """The mail settings are incomplete or invalid."""


class DeliveryFailed(ChannelflowError):
    """The email was not delivered."""


class TransientDeliveryFailure(DeliveryFailed):
    """The email was not delivered this time; a later attempt may succeed."""


class DeliveryOutcomeUnknown(TransientDeliveryFailure):
    """The provider may have received the email, but never confirmed it."""


class TransportUnavailable(TransientDeliveryFailure):
    """The mail transport cannot send anything now, so the rest of the pass waits too."""


class PermanentDeliveryFailure(DeliveryFailed):
    """The provider refused the email for good; retrying cannot help."""


class DatabaseUnavailable(ChannelflowError):
    """The database cannot be reached."""


class NotFound(ChannelflowError, LookupError):
    """Not found."""


class ReferralNotFound(NotFound):
    """No referral has that reference."""


class UserNotFound(NotFound):
    """No user has that name."""


class MeetingNotFound(NotFound):
    """No meeting is on that day."""


class Refused(ChannelflowError):
    """The action was refused."""


class TransitionNotAllowed(Refused):
    """The lifecycle does not allow that event from the referral's current state."""


class GuardRefused(Refused):
    """A condition of the event is not met."""


class PermissionDenied(Refused, PermissionError):
    """The user's role does not allow that action."""


class ConcurrentChange(ChannelflowError):
    """The referral was changed by someone else since it was read; reload it and try again."""


class IntegrityFailure(ChannelflowError):
    """The audit trail failed verification."""

    def __init__(self, message: str, *, sequence: int | None = None) -> None:
        super().__init__(message)
        self.sequence = sequence
