"""The exceptions this library raises.

Hierarchy::

    RepositoryError
    ├── InvalidInputError (also ValueError)
    │   ├── NotDicomError
    │   ├── MissingAttributeError
    │   ├── InvalidUIDError
    │   ├── InvalidValueError (and the handlers' InvalidHandlerError, MissingReferenceError)
    │   ├── ConflictError
    │   └── QueryError
    │       └── QueryRefusedError
    ├── NotFoundError (also LookupError)
    ├── NotMigratedError
    ├── FeedGapError
    ├── PullError (repository.sources)
    └── DatabaseError
        ├── TransactionConflictError
        └── ConnectionLostError
            └── ServerReadOnlyError

Database driver exceptions are translated in one place, :func:`repository.db_errors.translate`
(``raise ... from exc``), so a caller only needs to catch these classes.
"""

from __future__ import annotations


class RepositoryError(Exception):
    """Base class: raised for any failure this library reports."""


class InvalidInputError(RepositoryError, ValueError):
    """Raised when input metadata cannot be stored; the message names the source and attribute."""


class NotDicomError(InvalidInputError):
    """Raised when a file or object is not DICOM, or is truncated beyond reading."""


class MissingAttributeError(InvalidInputError):
    """Raised when a required attribute (for example SOPInstanceUID) is absent or empty."""


class InvalidUIDError(InvalidInputError):
    """Raised when a UID is not a string of digits and dots of at most 64 characters."""


class InvalidValueError(InvalidInputError):
    """Raised when an attribute value has the wrong shape or cannot be stored."""


class ConflictError(InvalidInputError):
    """Raised when input contradicts committed data (a SOP instance filed under another series)."""


class QueryError(InvalidInputError):
    """Raised when the database rejects a reporting query (``dicom-repo sql``/``report``)."""


class QueryRefusedError(QueryError):
    """Raised when a read-only query would write or holds more than one statement."""


class NotFoundError(RepositoryError, LookupError):
    """Raised when an operation needs a study or series that the store does not hold."""


class NotMigratedError(RepositoryError):
    """Raised when the database schema is missing or older than this library's migrations."""


class FeedGapError(RepositoryError):
    """Raised when a change-feed position is older than the change log keeps: the changes after
    it up to :attr:`horizon` were compacted away (``dicom-repo changes compact``).

    The consumer has missed changes; it should re-read the state it mirrors (``get_study``,
    a QIDO-RS search) and follow on from :attr:`newest` (``subscribe(since=error.newest)``).
    """

    def __init__(self, since: int, horizon: int, newest: int) -> None:
        super().__init__(
            f"the change log no longer holds the changes after seq {since}: changes up to seq "
            f"{horizon} were compacted away and the newest is seq {newest}: re-read the state "
            f"and follow from seq {newest}"
        )
        self.since, self.horizon, self.newest = since, horizon, newest


class DatabaseError(RepositoryError):
    """Raised when the database fails in a way that is not the caller's input."""


class TransactionConflictError(DatabaseError):
    """Raised when a concurrent writer made the transaction fail (deadlock, serialization
    failure, a unique key taken meanwhile, SQLite busy) and running it again would resolve it.

    Single ``add_*`` calls retry such failures by themselves; this reaches the caller from inside
    an explicit :meth:`Store.transaction` block (which cannot be replayed: use
    :meth:`Store.run_in_transaction`), or when the retries are exhausted.
    """


class ConnectionLostError(DatabaseError):
    """Raised when the database connection was lost (server restart, terminated backend) and
    the transaction on it was abandoned.

    Like :class:`TransactionConflictError`, single ``add_*`` calls and
    :meth:`Store.run_in_transaction` run the whole transaction again on a new connection; this
    reaches the caller from inside an explicit :meth:`Store.transaction` block.
    """


class ServerReadOnlyError(ConnectionLostError):
    """Raised when a write reached a server that only reads: a hot standby (``--db`` pointing
    at one, or a pooled connection to a primary that was demoted) or a server in recovery.

    After a failover the transaction is run again on a new connection (a libpq multi-host URL
    with ``target_session_attrs=read-write`` finds the new primary); this reaches the caller when
    no writable server turned up in time.
    """
