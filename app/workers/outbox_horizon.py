"""When a missing outbox sequence number can no longer appear.

``outbox_events.seq`` is taken when an event is inserted but becomes visible when its
transaction commits, so commits can leave holes behind the visible rows for a while. A
reader that must deliver events in ``seq`` order, none skipped, stops at a hole until
it is *settled*: every transaction that may hold the number has ended (committed, and so
visible now, or rolled back, and so the number is gone for good).

Decided on transaction-id snapshots, twice (as the webhook dispatcher's fan-out does):

1. When the hole is first seen, every transaction that may hold it is running, so its
   id is below that snapshot's ``xmax``. Once a later snapshot's ``xmin`` reaches that
   ``xmax``, they have all ended.
2. A transaction that had taken the number but not yet its transaction id (the
   microseconds between ``nextval`` and the row's insertion) is not covered by 1; it has
   an id by the end of phase 1, so the same wait is repeated once for the transactions
   running then.

No clock and no guess: a hole is skipped only when it is proven empty, however long the
transaction holding it runs.

The ``xmin`` these rules read is that of *this database's* transactions
(:data:`BOUNDS`), not the snapshot's own: a snapshot's ``xmin`` is the oldest transaction
of the whole cluster, and a long one in another database (a bulk load, a report, a
``pg_dump``) cannot hold an outbox number, yet would hold every hole open — and every
new event stream's start — for as long as it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

# ``SELECT <BOUNDS> FROM txid_current_snapshot() AS s``: ``xmin``, the oldest transaction
# of the snapshot still running *in this database* (each running transaction holds the
# lock on its own id, and pg_locks and the backends' databases are readable by any role),
# else the snapshot's ``xmax``; and ``xmax``. Transaction ids in pg_locks are 32-bit,
# those of snapshots 64-bit (with the epoch): compared modulo 2^32. A top-level
# transaction gets its id before any of its subtransactions, so the minimum over
# top-level ids bounds them too. (A prepared two-phase transaction holds its lock without
# a backend and is not counted: sladesk never prepares one.)
BOUNDS = (
    "coalesce((SELECT min(x) FROM txid_snapshot_xip(s) AS x WHERE x % 4294967296 IN ("
    "SELECT l.transactionid::text::bigint FROM pg_locks AS l "
    "JOIN pg_stat_activity AS a ON a.pid = l.pid "
    "WHERE l.locktype = 'transactionid' AND a.datname = current_database())), "
    "txid_snapshot_xmax(s)) AS xmin, txid_snapshot_xmax(s) AS xmax"
)


@dataclass
class _Wait:
    key: int
    phase: int
    xmax: int


class Horizon:
    """Settles one hole at a time (the lowest one: a reader in ``seq`` order stops there)."""

    def __init__(self) -> None:
        self._wait: _Wait | None = None

    @property
    def waiting(self) -> bool:
        return self._wait is not None

    def settled(self, key: int, xmin: int, xmax: int) -> bool:
        """Whether the sequence numbers below the first visible one after the hole that
        starts at ``key`` are settled, given this snapshot's ``xmin``/``xmax``."""
        wait = self._wait
        if wait is None or wait.key != key:
            self._wait = _Wait(key, phase=1, xmax=xmax)
            return False
        if xmin < wait.xmax:
            return False
        if wait.phase == 1:
            wait.phase, wait.xmax = 2, xmax
            return False
        self._wait = None
        return True

    def forget(self) -> None:
        self._wait = None


__all__ = ["BOUNDS", "Horizon"]
