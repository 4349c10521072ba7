"""Emails: templates, the transactional outbox, the dispatcher and the transports."""

from channelflow.notifications.dispatcher import Dispatcher, PassReport, RetryPolicy
from channelflow.notifications.kinds import Kind
from channelflow.notifications.notifier import DEFAULT_SENDER, Notice, Notifier
from channelflow.notifications.outbox import Status
from channelflow.notifications.templates import Templates

__all__ = [
    "DEFAULT_SENDER",
    "Dispatcher",
    "Kind",
    "Notice",
    "Notifier",
    "PassReport",
    "RetryPolicy",
    "Status",
    "Templates",
]
