"""The `channelflow` command. Errors become exit codes here and nowhere else."""

from __future__ import annotations

import os
import sys

import click

from channelflow.cli.app import root
from channelflow.exceptions import (
    ChannelflowError,
    ConcurrentChange,
    ConfigurationError,
    DeliveryFailed,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    Refused,
)

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
EXIT_CONCURRENT = 5
EXIT_INTEGRITY = 6
EXIT_NOT_DELIVERED = 7

_EXIT_CODES: tuple[tuple[type[ChannelflowError], int], ...] = (
    (InvalidInput, EXIT_USAGE),
    (ConfigurationError, EXIT_USAGE),
    (NotFound, EXIT_NOT_FOUND),
    (Refused, EXIT_REFUSED),
    (ConcurrentChange, EXIT_CONCURRENT),
    (IntegrityFailure, EXIT_INTEGRITY),
    (DeliveryFailed, EXIT_NOT_DELIVERED),
)


def exit_code_for(error: ChannelflowError) -> int:
    return next((code for kind, code in _EXIT_CODES if isinstance(error, kind)), EXIT_UNEXPECTED)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    try:
        root.main(args=argv, prog_name="channelflow", standalone_mode=False)
    except ChannelflowError as error:
        return _fail(error.message, exit_code_for(error))
    except click.exceptions.Abort:
        return _fail("aborted", EXIT_UNEXPECTED)
    except click.ClickException as error:
        if isinstance(error, click.UsageError) and error.ctx is not None:
            click.echo(error.ctx.get_usage(), err=True)
        return _fail(error.format_message(), error.exit_code)
    except click.exceptions.Exit as done:
        return done.exit_code
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as error:
        if os.environ.get("CHANNELFLOW_DEBUG"):
            raise
        # The message of an unexpected error may quote data, so only its kind is shown.
        return _fail(
            f"unexpected {type(error).__name__}; nothing was changed by the failed step "
            "(set CHANNELFLOW_DEBUG=1 to see a traceback)",
            EXIT_UNEXPECTED,
        )
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    message = message.rstrip(".")
    click.echo(f"channelflow: error: {message}.", err=True)
    return code
