"""The errors core raises. Pages and the CLI catch `FireactError` and show its message."""

from __future__ import annotations


class FireactError(Exception):
    """Base of every error that carries a message meant for a person."""


class FormatError(FireactError):
    """Input that cannot be read: names the file, the line and what is wrong."""

    def __init__(self, path: object, line: int, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(f"{self.path}:{line}: {message}")


class PrerequisiteError(FireactError):
    """Something the operation needs is missing (a package, a file, a setting)."""


class ToolError(FireactError):
    """A tool (search backend) failed; inside an episode it becomes an observation."""


class StoreError(FireactError):
    """The database could not be opened or written."""


class NotFoundError(FireactError):
    """A named thing (trajectory, source, dataset) does not exist."""


class ConflictError(FireactError):
    """An edit was based on a revision that someone else has since replaced."""

    def __init__(self, message: str, *, author: str | None = None, revision: int | None = None):
        self.author = author
        self.revision = revision
        super().__init__(message)


def missing_package(package: str, extra: str | None = None) -> PrerequisiteError:
    hint = f"pip install 'fireact-studio[{extra}]'" if extra else f"pip install {package}"
    return PrerequisiteError(f"this needs the Python package '{package}': {hint}")
