"""Mail transports: ``file`` (the default), ``smtp`` and ``notify``."""

from channelflow.notifications.transports.base import Transport
from channelflow.notifications.transports.file import FileTransport
from channelflow.notifications.transports.notify import NotifyTransport
from channelflow.notifications.transports.smtp import SmtpSettings, SmtpTransport, TLSMode

__all__ = [
    "FileTransport",
    "NotifyTransport",
    "SmtpSettings",
    "SmtpTransport",
    "TLSMode",
    "Transport",
]
