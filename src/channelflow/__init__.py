"""channelflow: a workflow engine for the UK Prevent duty's referral-to-Channel process."""

from channelflow.exceptions import ChannelflowError

__all__ = ["ChannelflowError", "__version__"]
__version__ = "0.1.0"
