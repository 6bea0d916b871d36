"""Why a decider refuses a command. The API maps these onto its error codes."""

from __future__ import annotations


class CommandRejected(Exception):
    """A command that the current state does not allow; nothing is recorded."""

    code = "INVALID_STATE"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidState(CommandRejected):
    code = "INVALID_STATE"


class UnknownStream(CommandRejected):
    code = "NOT_FOUND"


class AlreadyExists(CommandRejected):
    code = "ALREADY_EXISTS"
