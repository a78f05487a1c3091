"""Typed user-facing errors.

Everything a user can cause (a bad plan, a wrong password, an unreachable site, a
non-empty target) is raised as a :class:`DrplanError` subclass, caught once at the CLI
boundary and printed as one located message. Internal bugs are left to traceback.
"""

from __future__ import annotations


class DrplanError(Exception):
    """An error the user can act on. ``exit_code`` 2 is bad input, 1 a failed operation."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InputError(DrplanError):
    """Bad input: a plan, an argument or a file the user gave. Exit code 2."""

    exit_code = 2


class OperationError(DrplanError):
    """An operation that could not complete (engine, repository, data source). Exit code 1."""

    exit_code = 1
