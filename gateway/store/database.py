"""Engines, migrations and the group-committing writer.

The writes of a process are committed in batches: the operations that come
together run in one shared transaction, and one COMMIT (one flush) makes the
whole batch durable before any caller is answered. That is how intake keeps
"durable before 250" at high rates. Reads use a separate pool.

On SQLite the processes of a node take turns at the one database file (a
lock file, `.writelock`), and the threads of a process take turns too. The
COMMIT does not flush (`synchronous=NORMAL`): the lock is let go first, and
the write-ahead log is then flushed (`fdatasync`) while another process
commits; the batch's callers are answered only after that. A flush covers
every commit written before it, so the guarantee is that of a flushing
COMMIT.

On SQLite a batch is committed on the event loop's thread: the writes asked
for in one turn of the loop (the sessions whose data came in together) share
a commit at the end of that turn, when the database is free at once. Handing
a batch to a thread and the answers back costs wake-ups and hand-overs of the
interpreter's lock, about as much CPU as the commit itself; the flush's wait
(a fraction of a millisecond on a disk with a write cache) delays nothing the
250 was not waiting for already. Where the database is not free at once (this
process's writer thread has work, another process or a CLI command holds it),
or flushes take longer than `_LOOP_FLUSH` on average, the batch goes to the
writer thread instead, which waits for its turn and for the disk without
stopping the event loop, and takes what queued meanwhile into its batch (a
short transaction outside the turns, `transaction()` without `behind_writers`,
can still make SQLite's BEGIN wait a moment). On PostgreSQL, where a commit
waits for the network, every batch goes to the writer thread.

Shredding (setting a message's wrapped key and content to NULL) must not
leave copies behind: on SQLite, `secure_delete` zeroes deleted cells and
freed pages, and a transaction that shredded is followed by a truncating
checkpoint, which copies the WAL's new page images into the database and
empties the WAL that still holds the old ones. The checkpoint also puts the
shredding on disk, so after it the content files of shredded messages are
unlinked (store/contents.py).

Only some commits must reach the disk before anyone is answered: the accept
behind a 250 above all. State changes after it (claims, delivery outcomes
and the shredding they do) are written with `durable=False`: nobody waits
for a flush of them (SQLite: the batch's WAL is not flushed; PostgreSQL:
`synchronous_commit = off`). Both logs are written in commit order and a
flush covers everything written before it, so the next durable commit (or
checkpoint) makes them durable too; a crash of the machine can only undo the
last of them, never an earlier commit, and what it undoes is done again (a
job claimed or delivered again: at-least-once). A crash of the process alone
loses no commit at all.

When the database server goes away (PostgreSQL restarted, crashed, out of
reach), a batch that cannot commit fails every one of its callers at once
(intake answers 451 4.3.0: nothing is accepted that was not stored), the
broken connection is dropped, and the next batch connects afresh: the
writer recovers by itself once the server is back. A batch whose kept
connection is found dead before its COMMIT runs again on a new one. The
change of state is logged once each way (`database_unavailable`,
`database_available`), never per write. Reads are retried once on a new
connection when theirs was found dead; there is no ping before each
checkout, which would cost every read a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError

from gateway.logs import event as log_event
from gateway.store.audit_key import AuditKey
from gateway.store.contents import ContentFiles

T = TypeVar("T")
log = logging.getLogger("gateway.store")

_MAX_BATCH = 256
# How long a write that may wait (`Database.write(..., lingers=True)`) waits for
# another to share its commit, when it is alone (seconds).
_LINGER = 0.003
# Flushes slower than this on average (seconds) send the batches to the writer thread,
# so that a slow disk does not stop the event loop; faster ones bring them back. An
# average: on a busy machine a flush now and then waits for a core, not for the disk.
_LOOP_FLUSH = 0.005
_FLUSH_SMOOTHING = 0.2  # the weight of each new flush in the average
_BUSY_TIMEOUT_MS = 10000
# The WAL is cut back to this size when it is reset (bytes). Above what fills
# between two automatic checkpoints (1000 pages, 4 MiB): the commits after a reset
# overwrite blocks the file already has, and a flush of an overwrite costs about
# half that of a flush that grows the file. The truncating checkpoints after
# shredding still empty it.
_JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
# The server's checkpoints after shredding: at most one per interval (each
# one syncs the database file), and each waits only briefly for readers of
# an older snapshot, then is retried an interval later: intake must not stall.
_CHECKPOINT_INTERVAL = 1.0
_CHECKPOINT_WAIT_MS = 200


# Connection.info keys: the next transaction need not wait for the disk; it must
# not wait for another connection's write lock either (SQLite busy, at once); and
# the connection's current PRAGMA synchronous and busy_timeout.
_RELAXED = "phigate_relaxed"
_NO_WAIT = "phigate_no_wait"
_SYNCHRONOUS = "phigate_synchronous"
_BUSY = "phigate_busy_timeout"


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=0)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module (it does not
        # BEGIN before SELECT), so BEGIN IMMEDIATE below really locks.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # the 250 promise needs fsync on commit
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # Shredded keys and content are overwritten, not left on free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: SQLAlchemy's execution path (events, a
        # result object) costs more than these statements, run per transaction.
        driver = conn.connection.driver_connection
        assert driver is not None  # a checked-out connection
        # Set before BEGIN, for this transaction's COMMIT: FULL flushes the WAL.
        wanted = "NORMAL" if conn.info.pop(_RELAXED, False) else "FULL"
        if conn.info.get(_SYNCHRONOUS, "FULL") != wanted:
            driver.execute(f"PRAGMA synchronous={wanted}")
            conn.info[_SYNCHRONOUS] = wanted
        busy = 0 if conn.info.pop(_NO_WAIT, False) else _BUSY_TIMEOUT_MS
        if conn.info.get(_BUSY, _BUSY_TIMEOUT_MS) != busy:
            driver.execute(f"PRAGMA busy_timeout={busy}")
            conn.info[_BUSY] = busy
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_TXN_CACHE = "phigate_txn_cache"
_BEFORE_COMMIT = "phigate_before_commit"
_SHREDDED = "phigate_shredded"


def transaction_cache(conn: Connection) -> dict[str, Any]:
    """Values valid only until the current transaction (or savepoint) ends or rolls back."""
    cache: dict[str, Any] = conn.info.setdefault(_TXN_CACHE, {})
    return cache


def before_commit(conn: Connection, name: str, work: Callable[[Connection], None]) -> None:
    """Have `work` run once, as the last thing before this transaction's COMMIT, however
    many of its operations ask (by `name`): for what a group-committed batch can write in
    one statement instead of one per operation. Only in `Database.write` and
    `Database.transaction`, which run it; a rollback forgets it."""
    transaction_cache(conn).setdefault(_BEFORE_COMMIT, {})[name] = work


def run_before_commit(conn: Connection) -> None:
    """Run what `before_commit` asked for (Database's transactions do, before COMMIT)."""
    for work in transaction_cache(conn).pop(_BEFORE_COMMIT, {}).values():
        work(conn)


def shredded(conn: Connection) -> None:
    """Note that this transaction destroyed content: its commit is followed by a checkpoint."""
    conn.info[_SHREDDED] = True


def _took_shredding(conn: Connection) -> bool:
    """Whether the transaction about to commit shredded (read before COMMIT clears it)."""
    return bool(conn.info.pop(_SHREDDED, False))


def _forget_transaction_cache(conn: Connection, *_args: Any) -> None:
    conn.info.pop(_TXN_CACHE, None)


def _forget_shredding(conn: Connection, *_args: Any) -> None:
    conn.info.pop(_SHREDDED, None)


def _track_transactions(engine: Engine) -> None:
    for name in ("begin", "commit", "rollback", "rollback_savepoint"):
        event.listen(engine, name, _forget_transaction_cache)
    # A rolled-back savepoint keeps the mark: one checkpoint too many is harmless.
    for name in ("begin", "rollback"):
        event.listen(engine, name, _forget_shredding)


_AUDIT_KEY = "phigate_audit_key"


def audit_key_of(conn: Connection) -> AuditKey | None:
    """The audit key of the Database this write connection belongs to (None if it has none)."""
    key: AuditKey | None = conn.info.get(_AUDIT_KEY)
    return key


def _sqlite_file(url: str) -> str | None:
    """The database file's path, for SQLite with a file; None otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return None


def make_engines(url: str) -> tuple[Engine, Engine]:
    """(write engine, read engine) for a database URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return (
            # The writer thread keeps one; its checkpoints and the CLI's
            # transactions (threads of a server too) take the others.
            _sqlite_engine(url, immediate=True, pool_size=3),
            _sqlite_engine(url, immediate=False, pool_size=8),
        )
    # No pool_pre_ping: a connection found dead invalidates the pool (see `unreachable`).
    engine = create_engine(url, pool_size=8, max_overflow=4)
    return engine, engine


# SQLSTATE classes of a server going away: connection exceptions (08) and operator
# intervention (57: shutting down, starting up), but not a cancelled statement.
_LOST_STATES = ("08", "57")
_CANCELLED = "57014"


def unreachable(exc: BaseException, dialect: Dialect) -> bool:
    """Whether `exc` says the database server cannot be reached (rather than that a
    statement failed): a connection found broken, refused, or closed by the server.
    The driver's own errors count too (gateway.store.prepared runs on its cursor), and
    so does an error raised while handling one (the rollback of a dead transaction)."""
    cause: BaseException | None = exc
    while cause is not None:
        if _lost_connection(cause, dialect):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _lost_connection(exc: BaseException, dialect: Dialect) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    # SQLite's OperationalError is a busy or full database, not a lost server.
    if dialect.name != "postgresql" or not isinstance(driver_error, dialect.loaded_dbapi.Error):
        return False
    state = getattr(driver_error, "sqlstate", None)
    if state is None:  # not the server's answer: the connection failed
        driver = dialect.loaded_dbapi
        return isinstance(driver_error, driver.OperationalError | driver.InterfaceError)
    return state[:2] in _LOST_STATES and state != _CANCELLED


_MIGRATIONS = Path(__file__).parent / "migrations"


def head_revision() -> str:
    """The newest migration's revision: each file is named after its own ("0012_users.py")."""
    versions = (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    return max(path.name[:4] for path in versions)


def schema_revision(conn: Connection) -> str | None:
    """The revision the database's schema is at; None before the first migration."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


class SchemaError(Exception):
    """The database's schema is not at the revision this version of phigate runs on."""


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema is (None: no schema yet) against this code's newest revision."""

    current: str | None
    head: str

    @property
    def behind(self) -> bool:
        return self.current is None or self.current < self.head

    @property
    def ahead(self) -> bool:
        # Revisions are four digits ("0013"): their order is their string order.
        return self.current is not None and self.current > self.head

    def ahead_error(self) -> SchemaError:
        return SchemaError(
            f"the database's schema is at revision {self.current}, newer than this "
            f"version of phigate knows (revision {self.head}): a newer phigate upgraded it; "
            "run that version on this node too"
        )


# Any fixed number: PostgreSQL's advisory lock that lets one upgrade run at a time.
_MIGRATION_LOCK = 0x70686967


def schema_state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return SchemaState(schema_revision(conn), head_revision())


def migrate(engine: Engine) -> SchemaState:
    """Bring the schema to the newest Alembic revision; returns where it was before.

    Several nodes or commands upgrading at once take turns (PostgreSQL: an
    advisory lock held by the transaction): the first migrates, the others
    find the schema current. A schema newer than this code is left alone.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        before = SchemaState(schema_revision(conn), head_revision())
        if before.ahead:
            raise before.ahead_error()
        if not before.behind:
            return before
        # Imported only when there is work: Alembic costs every process memory.
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return before


@dataclass
class _Op:
    fn: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    durable: bool = True
    then: Callable[[Any], None] | None = None
    lingers: bool = False
    outcome: list[Any] = field(default_factory=list)


def _settle(op: _Op, ok: bool, value: Any) -> None:
    if not op.future.done():  # done: its caller was cancelled
        if ok:
            op.future.set_result(value)
        else:
            op.future.set_exception(value)
    if op.then is not None:  # before the caller resumes (a callback of the future)
        op.then(value if ok else None)


class Database:
    """Synchronous access for the CLI, and async group-committed writes for the server.

    `audit_key` keys the audit chain; without one, appending an audit event fails.
    """

    def __init__(self, url: str, *, audit_key: AuditKey | None = None) -> None:
        self.url = url
        self.write_engine, self.read_engine = make_engines(url)
        _track_transactions(self.write_engine)
        self.audit_key = audit_key
        event.listen(self.write_engine, "begin", self._lend_audit_key)
        sqlite_file = _sqlite_file(url)
        # SQLite: a lock file that queues the writers of several processes (waiting on
        # flock wakes the next writer the moment the lock is free; SQLite's own busy
        # handler polls with sleeps of up to 100 ms), and the write-ahead log, which
        # the writer flushes itself.
        self._lock_path = Path(sqlite_file + ".writelock") if sqlite_file else None
        self._wal_path = sqlite_file + "-wal" if sqlite_file else None
        # SQLite: the large contents, in files of their own (store/contents.py).
        self.contents = ContentFiles(Path(sqlite_file + "-contents")) if sqlite_file else None
        self._lock_fd: int | None = None
        # SQLite: one thread of this process at a time at the database (the lock file
        # orders processes, not the threads of one).
        self._turn = threading.Lock()
        self.dialect = self.write_engine.dialect.name
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        # The connection of the turns at the database (the writer thread's and the
        # event loop's), kept from one to the next: a checkout from the pool per
        # transaction costs about as much as a statement.
        self._writer_conn: Connection | None = None
        self._thread: threading.Thread | None = None
        # SQLite: the batch gathered on the event loop, and the call that commits it
        # (at the end of the loop's turn, or once a lingering write has waited).
        self._batch: list[_Op] = []
        self._batch_call: asyncio.Handle | None = None
        self._flush_seconds = 0.0  # how long flushes take, a moving average
        # Writes handed to the writer thread and not yet answered (counted on the event
        # loop): while there are any, a batch of the loop goes after them, never before.
        self._at_writer = 0
        self.batches = 0
        self.batched_ops = 0
        # Set in a turn at the database (see `_exclusive`), by the writer thread or the
        # event loop: when (monotonic) to checkpoint after shredding; None if not due.
        self._checkpoint_at: float | None = None
        self._checkpointed_at = 0.0
        # When (monotonic) the server was found unreachable; None while it is.
        self._lost_at: float | None = None
        # Whether the current transaction reached its COMMIT.
        self._committing = False

    @property
    def available(self) -> bool:
        """False from a write that could not reach the server until one commits again."""
        return self._lost_at is None

    def _lend_audit_key(self, conn: Connection) -> None:
        conn.info[_AUDIT_KEY] = self.audit_key

    def migrate(self) -> SchemaState:
        return migrate(self.write_engine)

    def schema_state(self) -> SchemaState:
        return schema_state(self.write_engine)

    @contextlib.contextmanager
    def transaction(self, *, behind_writers: bool = False) -> Iterator[Connection]:
        """A synchronous write transaction (CLI commands).

        `behind_writers` queues it with the server's writers (SQLite) instead
        of polling for the lock: for work that loops over many transactions.
        """
        with self._exclusive() if behind_writers else contextlib.nullcontext():
            with self.write_engine.begin() as conn:
                yield conn
                run_before_commit(conn)
                shred = _took_shredding(conn)
            if shred:
                self.checkpoint()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.read_engine.connect() as conn:
            yield conn

    def checkpoint(self, wait_ms: int = _BUSY_TIMEOUT_MS) -> bool:
        """SQLite: copy the WAL into the database and truncate it; False if readers kept it.

        After a shredding UPDATE the old page images live on only in the
        WAL; this removes them. It runs outside any transaction and waits
        at most `wait_ms` for readers of an older snapshot.
        """
        if self.dialect != "sqlite":
            return True
        raw = self.write_engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(f"PRAGMA busy_timeout={wait_ms}")
            try:
                busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                cursor.close()
        except Exception as exc:  # what was shredded is committed; only the clean-up waits
            log.warning("checkpoint failed", extra={"fields": {"error": type(exc).__name__}})
            return False
        finally:
            raw.close()
        if busy:
            return False
        # Every commit is on disk now, shreddings too: their content files can go.
        self.remove_contents()
        return True

    def remove_contents(self) -> int:
        """Remove the content files of shredded messages, and the old ones no row names
        (store/contents.py); how many were removed."""
        contents = self.contents
        names = contents.stored() if contents is not None else []
        if contents is None or not names:  # the common case: no large message in the queue
            return 0
        try:
            with self.reading() as conn:
                return len(contents.sweep(conn, names))
        except Exception as exc:  # the key is gone already; the next checkpoint tries again
            error = type(exc).__name__
            log_event(log, "content_files_not_removed", logging.WARNING, error=error)
            return 0

    # --- async side -----------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """SQLite: this thread's turn at the database, among this process's threads and
        the node's processes. PostgreSQL orders its writers itself."""
        self._take_turn(wait=True)
        try:
            yield
        finally:
            self._end_turn()

    def _take_turn(self, *, wait: bool) -> bool:
        """Start this thread's turn (see `_exclusive`); without `wait`, False if another
        thread or process has it now."""
        if self._lock_path is None:
            return True
        if not self._turn.acquire(blocking=wait):
            return False
        try:
            if self._lock_fd is None:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._turn.release()
            return False
        except BaseException:
            self._turn.release()
            raise
        return True

    def _end_turn(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._turn.release()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer, name="db-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._batch:  # the event loop's batch is left to the writer
            if self._batch_call is not None:
                self._batch_call.cancel()
            self._to_writer(self._take_batch())
        if self._thread is not None:
            self._ops.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def close(self) -> None:
        self.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.write_engine.dispose()
        self.read_engine.dispose()

    async def write(
        self,
        fn: Callable[[Connection], T],
        *,
        durable: bool = True,
        then: Callable[[T | None], None] | None = None,
        lingers: bool = False,
    ) -> T:
        """Run fn in the shared write transaction; returns after the COMMIT.

        The COMMIT is on stable storage before this returns unless `durable`
        is False: for changes a crash of the machine may undo because they
        are redone then (see the module's notes). A batch commits durably if
        any of its writes must.

        `then` is called on the event loop once the write is settled, with fn's
        result if it committed and None if not, even if the caller was
        cancelled meanwhile: for what must follow a commit whoever waits for it.

        A write that `lingers` (nobody waits for it but its caller) and finds
        no other write to commit with waits up to a few milliseconds for one:
        with a single client, a delivery's outcome then shares the next
        accept's commit instead of paying for a transaction of its own.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        op = _Op(fn, future, loop, durable, then, lingers)
        if self._lock_path is None or self._flush_seconds > _LOOP_FLUSH:
            self._to_writer([op])
        else:
            self._gather_on_loop(op)
        return await future

    def _gather_on_loop(self, op: _Op) -> None:
        """Add `op` to the event loop's batch, committed at the end of this turn of the
        loop, or once the lingering writes it holds alone have waited (or, either way,
        once the writer thread has answered what it was handed before)."""
        batch = self._batch
        if batch and batch[0].loop is not op.loop:  # another event loop's: never mixed
            self._to_writer([op])
            return
        waited = all(other.lingers for other in batch)  # a call_later, if any was made
        batch.append(op)
        lingers = waited and op.lingers
        if self._at_writer:  # `_answered_by_writer` calls for the commit
            if self._batch_call is not None:
                self._batch_call.cancel()
                self._batch_call = None
            return
        if self._batch_call is not None:
            if lingers or not waited:
                return  # the call made already commits this write too
            self._batch_call.cancel()  # company came for the lingering ones: commit now
        self._batch_call = (
            op.loop.call_later(_LINGER, self._commit_batch)
            if lingers
            else op.loop.call_soon(self._commit_batch)
        )

    def _take_batch(self) -> list[_Op]:
        batch, self._batch, self._batch_call = self._batch, [], None
        return batch

    def _to_writer(self, batch: list[_Op]) -> None:
        self._at_writer += len(batch)
        for op in batch:
            self._ops.put(op)

    def _answered_by_writer(self, op: _Op, ok: bool, value: Any) -> None:
        self._at_writer -= 1
        _settle(op, ok, value)
        if not self._at_writer and self._batch and self._batch_call is None:
            self._batch_call = op.loop.call_soon(self._commit_batch)  # it waited for this

    def _commit_batch(self) -> None:
        """Commit the event loop's batch here if the database is free now, else hand it
        to the writer thread: it never waits for another writer on the event loop. It
        never commits before what it handed to the writer thread either: while that is
        unanswered, the batch waits (and grows) on the loop."""
        if self._at_writer:
            self._batch_call = None  # called again by `_answered_by_writer`
            return
        batch = self._take_batch()
        if self._commit_here(batch):
            for op in batch:
                _settle(op, *op.outcome)
        else:
            self._to_writer(batch)

    def _commit_here(self, batch: list[_Op]) -> bool:
        """Commit `batch` on this thread if the database is free now; False if it is
        not, or the commit failed (the writer thread then runs it again: an op only
        touches the database, so a rolled back one can be redone)."""
        if not self._take_turn(wait=False):
            return False
        try:
            self._commit(batch, wait=False)  # the event loop never waits for a lock
        except Exception:
            return False
        finally:
            self._end_turn()
        self._back()
        self._flush_wal(batch)
        return True

    async def read(self, fn: Callable[[Connection], T]) -> T:
        def run() -> T:
            try:
                with self.reading() as conn:
                    return fn(conn)
            except Exception as exc:
                if not unreachable(exc, self.read_engine.dialect):
                    raise
            # The server restarted (or is gone): every pooled connection is dead.
            self.read_engine.dispose()
            with self.reading() as conn:
                return fn(conn)

        return await asyncio.to_thread(run)

    def _commit(self, ops: list[_Op], *, wait: bool = True) -> None:
        """Run ops in one transaction and commit; raises if an op or the COMMIT fails.
        Without `wait`, SQLite's BEGIN fails at once where another connection (a CLI
        command's, outside the turns) holds the write lock."""
        # A file's WAL is flushed once the write lock is let go (`_flush_wal`).
        durable = self._wal_path is None and any(op.durable for op in ops)
        self._committing = False
        with self._begin(durable=durable, wait=wait) as conn:
            for op in ops:
                op.outcome = [True, op.fn(conn)]
            run_before_commit(conn)
            if _took_shredding(conn) and self._checkpoint_at is None:
                self._checkpoint_at = self._checkpointed_at + _CHECKPOINT_INTERVAL
            self._committing = True  # from here, a failure may leave it committed
        self.batches += 1
        self.batched_ops += len(ops)

    @contextlib.contextmanager
    def _begin(self, *, durable: bool, wait: bool) -> Iterator[Connection]:
        """A turn's transaction; its COMMIT waits for the disk only if `durable`."""
        conn = self._writer_conn
        if conn is None:
            conn = self._writer_conn = self.write_engine.connect()
        try:
            if self.dialect == "sqlite":  # read and cleared as the transaction begins
                conn.info[_RELAXED] = not durable
                conn.info[_NO_WAIT] = not wait
            with conn.begin():
                if not durable and self.dialect == "postgresql":
                    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield conn
        except BaseException:
            # What failed may have left the connection unusable (an I/O error,
            # a lost server): the next transaction starts on a fresh one.
            self._writer_conn = None
            conn.close()
            raise

    def _unreachable(self, exc: BaseException) -> bool:
        return unreachable(exc, self.write_engine.dialect)

    def _lost(self, exc: BaseException) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            log_event(log, "database_unavailable", logging.ERROR, error=type(exc).__name__)

    def _back(self) -> None:
        if self._lost_at is not None:
            down = time.monotonic() - self._lost_at
            self._lost_at = None
            log_event(log, "database_available", down_seconds=round(down, 1))

    def _run_alone(self, op: _Op) -> None:
        try:
            self._commit([op])
        except Exception as exc:  # this op failed, or its COMMIT did: it is not durable
            log.error("database write failed", extra={"fields": {"error": type(exc).__name__}})
            op.outcome = [False, exc]

    def _writer(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._ops.get(timeout=self._until_checkpoint())
            except queue.Empty:
                self._checkpoint_if_due()
                continue
            if first is None:
                break
            batch = [first]
            stopping = self._gather(batch)
            if not stopping and len(batch) < _MAX_BATCH and all(op.lingers for op in batch):
                stopping = self._linger(batch)
            with self._exclusive():
                # Another process may have held the database meanwhile: what queued
                # while this one waited shares the commit instead of waiting for the next.
                if not stopping:
                    stopping = self._gather(batch)
                self._run_batch(batch)
            self._flush_wal(batch)
            for op in batch:
                ok, value = op.outcome
                op.loop.call_soon_threadsafe(self._answered_by_writer, op, ok, value)
            self._checkpoint_if_due()
        if self._checkpoint_at is not None:
            with self._exclusive():
                self.checkpoint()
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None

    def _gather(self, batch: list[_Op]) -> bool:
        """Add to `batch` what is queued, up to _MAX_BATCH; True if told to stop meanwhile."""
        while len(batch) < _MAX_BATCH:
            try:
                nxt = self._ops.get_nowait()
            except queue.Empty:
                return False
            if nxt is None:
                return True
            batch.append(nxt)
        return False

    def _linger(self, batch: list[_Op]) -> bool:
        """Wait up to _LINGER for a write to join `batch`, then take what has come;
        True if the writer was told to stop meanwhile."""
        try:
            nxt = self._ops.get(timeout=_LINGER)
        except queue.Empty:
            return False
        if nxt is None:
            return True
        batch.append(nxt)
        return self._gather(batch)

    def _until_checkpoint(self) -> float:
        if self._checkpoint_at is None:
            # A commit on another thread (`_commit_here`) may make one due meanwhile.
            return _CHECKPOINT_INTERVAL
        return max(0.0, self._checkpoint_at - time.monotonic())

    def _checkpoint_if_due(self) -> None:
        """After the batch's callers are answered: one short try, else again later."""
        if self._checkpoint_at is None or time.monotonic() < self._checkpoint_at:
            return
        with self._exclusive():
            done = self.checkpoint(_CHECKPOINT_WAIT_MS)
        self._checkpointed_at = time.monotonic()
        self._checkpoint_at = None if done else self._checkpointed_at + _CHECKPOINT_INTERVAL

    def _run_batch(self, batch: list[_Op]) -> None:
        """Commit the batch in one transaction; if an op fails, redo the ops one by one.

        Operations only touch the database (their inputs are computed before
        they are queued), so re-running them after a rollback is safe, and
        the common case pays for no savepoints.
        """
        kept = self._writer_conn is not None
        try:
            try:
                self._commit(batch)
            except Exception as exc:
                # A connection kept from before the server restarted fails before its
                # COMMIT: nothing was committed, and the batch runs again on a new one.
                if not (kept and not self._committing and self._unreachable(exc)):
                    raise
                self._commit(batch)
        except Exception as exc:
            if self._unreachable(exc):
                # Every op would fail alike: fail them all now, no retries one by one.
                self._lost(exc)
                for op in batch:
                    op.outcome = [False, exc]
            else:
                for op in batch:
                    self._run_alone(op)
        if any(op.outcome[0] for op in batch):
            self._back()

    def _flush_wal(self, batch: list[_Op]) -> None:
        """SQLite: make the batch's commit durable, if a caller waits for that.

        The COMMIT itself did not wait for the disk; flushing the WAL here,
        after the write lock is let go, lets another process commit while this
        one waits for the disk, and the flush covers every commit before it.
        Nobody is answered before it: a flush that fails fails the durable
        operations (their callers answer 451; what was committed is delivered
        at least once, never lost).
        """
        if self._wal_path is None or not any(op.durable and op.outcome[0] for op in batch):
            return
        started = time.monotonic()
        try:
            # Opened each time: a descriptor kept across a WAL removed and made again
            # would flush the old file.
            fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("database flush failed", extra={"fields": {"error": type(exc).__name__}})
            for op in batch:
                if op.durable and op.outcome[0]:
                    op.outcome = [False, exc]
        took = time.monotonic() - started
        self._flush_seconds += (took - self._flush_seconds) * _FLUSH_SMOOTHING
