"""The transaction methods of :class:`~repository.Store` (not OHIF's API): group adds into one
commit, run a block again after a concurrent writer's conflict or a lost connection. The
:class:`~repository.unit_of_work.UnitOfWork` does the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .db_errors import DEFAULT_ATTEMPTS
from .unit_of_work import UnitOfWork

T = TypeVar("T")


class TransactionMethods:
    """The transaction methods of :class:`~repository.Store` (its ``_uow`` runs them)."""

    _uow: UnitOfWork

    @property
    def retries(self) -> int:
        """How many transactions of this store were run again after a concurrent writer's
        conflict or a lost connection, since it was opened."""
        return self._uow.retries

    @property
    def in_transaction(self) -> bool:
        """True inside ``with store.transaction():`` in the calling thread."""
        return self._uow.current is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several adds into one commit; events are delivered after it, or never.

        Nested use joins the outer transaction. A failed ``add_*`` inside it is rolled back to
        its own savepoint, so the caller may catch the error and go on. A concurrent writer's
        conflict (or a lost connection) raises :class:`TransactionConflictError`
        (:class:`ConnectionLostError`), nothing committed: :meth:`run_in_transaction` retries.
        """
        with self._uow.transaction():
            yield

    def run_in_transaction(self, fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        """Run ``fn()`` in one transaction, again if a concurrent writer conflicts or the
        connection is lost (up to ``attempts`` calls: ``fn`` should be safe to repeat).

        Events are delivered once, after the commit that succeeded. Inside an enclosing
        transaction ``fn`` just joins it (no retry).
        """
        return self._uow.run(fn, attempts=attempts)
