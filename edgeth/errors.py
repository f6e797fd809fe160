"""One error family. The CLI prints `error: <what> — <what to do>` and exits 2."""
from __future__ import annotations


class EdgethError(Exception):
    """A user-facing error: what went wrong and what to do about it.

    exit_code 2 is bad input (the default); 1 is a failed check (e.g. parity).
    """

    exit_code = 2

    def __init__(self, what: str, fix: str | None = None, *, exit_code: int | None = None):
        self.what = what
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__(self.message())

    def message(self) -> str:
        return f"{self.what} — {self.fix}" if self.fix else self.what


class InputError(EdgethError):
    """Bad or missing input file, wrong shape, unreadable data."""


class BundleError(EdgethError):
    """Corrupt, tampered or incompatible bundle."""


class TargetUnavailable(EdgethError):
    """The asked-for target/backend cannot run here."""


class UnsupportedOp(EdgethError):
    """A program uses a construct a target cannot lower."""


class CheckFailed(EdgethError):
    """A verification ran and did not pass (exit 1, not a usage error)."""

    exit_code = 1
