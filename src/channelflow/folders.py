"""Writing a new folder of files all at once: built in a hidden sibling, then renamed into
place, so a failure never leaves half a bundle or half a subject access export."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from channelflow.exceptions import InvalidInput


def new_output(path: Path, *, folder: bool = True) -> Path:
    """``path`` made absolute, once it is known to be free: a new (or empty) folder, or with
    ``folder`` false a new file."""
    path = Path(os.path.abspath(path))
    if not path.name:
        raise InvalidInput("give the name of a new folder to write to")
    if path.exists():
        if not folder or not path.is_dir():
            raise InvalidInput(f"{path} already exists; give a new name")
        if any(path.iterdir()):
            raise InvalidInput(
                f"the folder {path} already exists and is not empty; give a new or empty folder"
            )
    elif not path.parent.is_dir():
        raise InvalidInput(f"the folder {path.parent} does not exist")
    return path


def staging_beside(target: Path) -> Path:
    """A new hidden folder next to ``target``, on the same file system (so renaming is atomic)."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".partial", dir=target.parent))


def publish(staging: Path, target: Path) -> None:
    """Put the finished ``staging`` folder (or file) in ``target``'s place."""
    try:
        if target.is_dir():
            target.rmdir()  # empty: checked by `new_output`, and rmdir refuses otherwise
        staging.rename(target)
    except OSError as error:
        raise InvalidInput(f"cannot create {target} ({error.strerror})") from None
