"""Panel and board meetings: when they fall, and working days around them."""

from channelflow.meetings.rules import BOARD_RULE, PANEL_RULE, MeetingRule
from channelflow.meetings.workdays import WorkingDays

__all__ = ["BOARD_RULE", "PANEL_RULE", "MeetingRule", "WorkingDays"]
