"""The Prevent duty toolkit self-assessment: benchmarks rated on a scale that is data, and
actions with owners and six-monthly process reviews."""

from channelflow.toolkit.datafile import read_toolkit
from channelflow.toolkit.queries import DueAction, due_actions, ratings_by_colour
from channelflow.toolkit.service import Loaded, Rated, Toolkit, next_review

__all__ = [
    "DueAction",
    "Loaded",
    "Rated",
    "Toolkit",
    "due_actions",
    "next_review",
    "ratings_by_colour",
    "read_toolkit",
]
