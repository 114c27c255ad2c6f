"""Results on disk: one SQLite file (WAL), a versioned schema, one transaction per run.

A run is written whole or not at all, so a sweep killed at any moment (Ctrl-C, SIGKILL)
leaves a consistent store, and rerunning it skips the runs already there.

Examples:
    >>> import tempfile
    >>> with Store(Path(tempfile.mkdtemp()) / "results.db") as store:
    ...     store.save(RunRecord("abc", "demo", {"activation": "relu"}, 0, {"depth": 2},
    ...                          "finished", 0.5, metrics=[(1, "loss", 0.25)]))
    ...     [run.metrics for run in store.runs("demo")]
    [[(1, 'loss', 0.25)]]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "Claim", "RunRecord", "Store"]

SCHEMA_VERSION = 1
_APPLICATION = "leaky"
_BUSY_SECONDS = 30.0  # how long an opener or writer waits for another process's transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    cell TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'diverged')),
    seconds REAL NOT NULL,
    results TEXT NOT NULL,
    versions TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL,
    name TEXT NOT NULL, value REAL
);
CREATE TABLE IF NOT EXISTS layer_stats (
    run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL,
    layer TEXT NOT NULL, name TEXT NOT NULL, value REAL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id);
CREATE INDEX IF NOT EXISTS layer_stats_run ON layer_stats(run_id);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment);
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    expires REAL NOT NULL
);
"""
# Claims: a run that a process is computing, with a lease that process renews. Another process
# on the same store leaves a claimed run alone until the lease runs out (or, on the same host,
# until the owner's pid is gone), so two sweeps of one store never compute a run twice.
_CLAIMS = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS claims") :]


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master")}


def _needs_folder(error: sqlite3.Error) -> bool:
    name = getattr(error, "sqlite_errorname", "")
    return name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))


def _has_log(path: Path) -> bool:
    """Whether a write-ahead log with content lies beside the store (runs not yet merged)."""
    log = path.with_name(path.name + "-wal")
    return log.exists() and log.stat().st_size > 0


def _damaged(path: Path, error: sqlite3.Error) -> str:
    return (
        f"The store {path} is damaged ({error}); recover the runs that can still be read "
        f"with `sqlite3 {path} .recover | sqlite3 recovered.db` and pass --store recovered.db"
    )


@dataclass
class RunRecord:
    """Everything one run produced; written in one transaction."""

    run_id: str
    experiment: str
    cell: dict[str, Any]
    seed: int
    config: dict[str, Any]
    status: str  # "finished" or "diverged"
    seconds: float
    metrics: list[tuple[int, str, float]] = field(default_factory=list)
    layers: list[tuple[int, str, str, float]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)  # software, and "data" fingerprints
    created: str = ""  # UTC time the store wrote the run (set when read back)


@dataclass(frozen=True)
class Claim:
    """Who computes a run: the owner's token, host and pid, and when the lease runs out."""

    run_id: str
    owner: str
    host: str
    pid: int
    expires: float

    def is_stale(self, now: float) -> bool:
        """The lease ran out, or the owner ran on this host and its process is gone."""
        return self.expires < now or (self.host == socket.gethostname() and not _alive(self.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class Store:
    """A results database. Opens (or creates) ``path``; refuses files that are not stores.

    Opening for writing creates the schema in one transaction that concurrent openers wait
    for, so several sweeps may start on a new path at once. ``readonly=True`` opens an
    existing store for reading only (``leaky report``): nothing is created or switched, and
    it works on a file or in a folder the caller may not write.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_dir():
            raise ValueError(f"Expected a store file, but {str(self.path)!r} is a folder")
        if readonly:
            self._db = self._open_for_reading()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"Cannot open the store {self.path}: cannot create its folder "
                f"({error.strerror}); choose another --store path"
            ) from None
        try:
            self._db = sqlite3.connect(self.path, timeout=_BUSY_SECONDS)
        except sqlite3.Error as error:
            raise self._error(error, "create") from None
        try:
            self._check_or_create()
            self._use_wal()
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as error:
            self._db.close()
            raise self._error(error, "create") from None
        except BaseException:
            self._db.close()
            raise

    def _open_for_reading(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise ValueError(
                f"No results store at {str(self.path)!r}; run `leaky demo` or `leaky run "
                f"EXPERIMENT --store {self.path}` first, or pass --store"
            )
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise ValueError(
                f"{str(self.path)!r} is empty, not a leaky results store; pass another --store"
            )
        uri = self.path.resolve().as_uri() + "?mode=ro"
        db = None
        try:
            db = sqlite3.connect(uri, uri=True, timeout=_BUSY_SECONDS)
            try:
                self._check(db, _tables(db))
            except sqlite3.OperationalError as error:
                # A WAL store needs its -shm file; in a folder we may not write, sqlite
                # cannot create it. With no log left to replay, the file alone is the store.
                if not _needs_folder(error) or _has_log(self.path):
                    raise
                db.close()
                db = sqlite3.connect(uri + "&immutable=1", uri=True)
                self._check(db, _tables(db))
        except sqlite3.Error as error:
            if db is not None:
                db.close()
            raise self._error(error, "open") from None
        except BaseException:
            if db is not None:
                db.close()
            raise
        return db

    def _error(self, error: sqlite3.Error, doing: str) -> ValueError:
        """The user's view of an sqlite error: what is wrong with the file, and what to do.

        ``doing`` is "create" (opening to write), "open" (opening to read) or "read".
        """
        name = getattr(error, "sqlite_errorname", "")
        if name == "SQLITE_NOTADB" and doing != "read":
            return ValueError(
                f"{self.path} is not a leaky results store (not an SQLite database); "
                "choose another --store path"
            )
        if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB":
            return ValueError(_damaged(self.path, error))
        if doing == "create" and name.startswith(
            ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
        ):
            return ValueError(
                f"Cannot write the store {self.path}: {error} (check the permissions of the "
                "file and its folder, or choose another --store path)"
            )
        if name.startswith("SQLITE_CANTOPEN") and _has_log(self.path):
            return ValueError(
                f"Cannot read the store {self.path}: its write-ahead log {self.path}-wal "
                "needs a folder this process may write; copy the store with its -wal file "
                "to one"
            )
        return ValueError(
            f"Cannot {'open' if doing == 'create' else doing} the store {self.path}: {error}"
        )

    def _check(self, db: sqlite3.Connection, tables: set[str]) -> None:
        """Refuse what is not a leaky store of this schema (a database with no tables is new)."""
        if "meta" not in tables:
            if tables:
                raise ValueError(f"{self.path} is an SQLite file but not a leaky results store")
            return
        meta = dict(db.execute("SELECT key, value FROM meta"))
        if meta.get("application") != _APPLICATION:
            raise ValueError(f"{self.path} is not a leaky results store")
        raw = meta.get("schema_version")
        try:
            version = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(
                f"{self.path} has an unreadable store schema version {raw!r} (this leaky "
                f"reads version {SCHEMA_VERSION}); the file was edited or not written by "
                "leaky: use a new --store path"
            ) from None
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{self.path} has store schema version {version}, but this leaky reads "
                f"version {SCHEMA_VERSION}; use a new --store path or a matching leaky"
            )

    def _check_or_create(self) -> None:
        # One write transaction, taken before looking: an opener that finds the file being
        # created waits (busy timeout) and then sees the whole schema, never half of it.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._check(self._db, _tables(self._db))
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('application', ?), ('schema_version', ?)",
                (_APPLICATION, str(SCHEMA_VERSION)),
            )
            self._db.commit()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # keep the error that matters
                self._db.rollback()
            raise

    def _use_wal(self) -> None:
        # Switching to WAL needs the file to itself; other openers may be reading the
        # schema at that moment, so wait for them rather than fail.
        deadline = time.monotonic() + _BUSY_SECONDS
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorname", "") != "SQLITE_BUSY":
                    raise
                if time.monotonic() > deadline:
                    raise
            else:
                if time.monotonic() > deadline:
                    raise ValueError(f"Cannot switch the store {self.path} to WAL mode")
            time.sleep(0.01)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, record: RunRecord) -> None:
        """Write one run, all of it or nothing; a run already stored is left as it is."""
        if self.readonly:
            raise ValueError(f"The store {self.path} is open read-only; open it to write")
        try:
            self._save(record)
        except sqlite3.Error as error:
            raise ValueError(f"Cannot write to the store {self.path}: {error}") from None

    def _save(self, record: RunRecord) -> None:
        with self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO runs (run_id, experiment, cell, seed, config, status, "
                "seconds, results, versions, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now'))",
                (
                    record.run_id,
                    record.experiment,
                    json.dumps(record.cell, sort_keys=True),
                    record.seed,
                    json.dumps(record.config, sort_keys=True),
                    record.status,
                    record.seconds,
                    json.dumps(record.results, sort_keys=True, allow_nan=True),
                    json.dumps(record.versions, sort_keys=True),
                ),
            )
            if cursor.rowcount == 0:
                return
            self._db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?)",
                [(record.run_id, step, name, value) for step, name, value in record.metrics],
            )
            self._db.executemany(
                "INSERT INTO layer_stats VALUES (?, ?, ?, ?, ?)",
                [(record.run_id, *row) for row in record.layers],
            )

    def run_ids(self, experiment: str | None = None) -> set[str]:
        """Ids of the runs stored (for one experiment, or all)."""
        with self._reading():
            return self._run_ids(experiment)

    def runs(self, experiment: str | None = None) -> list[RunRecord]:
        """Every stored run (of one experiment), with its metrics and layer statistics."""
        with self._reading():
            return self._runs(experiment)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        # A damaged page surfaces as a DatabaseError wherever a read touches it.
        try:
            yield
        except sqlite3.Error as error:
            raise self._error(error, "read") from None

    def _run_ids(self, experiment: str | None) -> set[str]:
        query, args = "SELECT run_id FROM runs", ()
        if experiment is not None:
            query, args = query + " WHERE experiment = ?", (experiment,)
        return {row[0] for row in self._db.execute(query, args)}

    def _runs(self, experiment: str | None) -> list[RunRecord]:
        query = (
            "SELECT run_id, experiment, cell, seed, config, status, seconds, results, versions, "
            "created FROM runs"
        )
        args: tuple[Any, ...] = ()
        if experiment is not None:
            query, args = query + " WHERE experiment = ?", (experiment,)
        records = []
        for row in self._db.execute(query + " ORDER BY experiment, cell, seed", args):
            run_id = row[0]
            metrics = [
                (step, name, math.nan if value is None else value)  # NaN comes back as NULL
                for step, name, value in self._db.execute(
                    "SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY rowid",
                    (run_id,),
                )
            ]
            layers = [
                (*r[:3], math.nan if r[3] is None else r[3])
                for r in self._db.execute(
                    "SELECT step, layer, name, value FROM layer_stats WHERE run_id = ? "
                    "ORDER BY rowid",
                    (run_id,),
                )
            ]
            records.append(
                RunRecord(
                    run_id=run_id,
                    experiment=row[1],
                    cell=json.loads(row[2]),
                    seed=row[3],
                    config=json.loads(row[4]),
                    status=row[5],
                    seconds=row[6],
                    metrics=metrics,
                    layers=layers,  # type: ignore[arg-type]
                    results=json.loads(row[7]),
                    versions=json.loads(row[8]),
                    created=row[9],
                )
            )
        return records

    # Claims (see _CLAIMS): new methods only, so that opening a store stays as it is.

    def claim(self, run_id: str, owner: str, lease: float = 60.0) -> str:
        """Claim ``run_id`` for ``owner`` for ``lease`` seconds, in one transaction.

        Returns ``"claimed"`` (the caller may compute it), ``"stored"`` (it is in the store
        already) or ``"taken"`` (another owner holds a live claim; see :meth:`claim_of`).

        Examples:
            >>> import tempfile
            >>> with Store(Path(tempfile.mkdtemp()) / "results.db") as store:
            ...     store.claim("r1", "a"), store.claim("r1", "b"), store.claim("r1", "a")
            ('claimed', 'taken', 'claimed')
        """
        try:
            return self._claim(run_id, owner, lease)
        except sqlite3.Error as error:
            raise ValueError(f"Cannot write to the store {self.path}: {error}") from None

    def _claim(self, run_id: str, owner: str, lease: float) -> str:
        now = time.time()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")  # read and write as one step against other owners
            self._db.execute(_CLAIMS)
            if self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                return "stored"
            held = self._claim_row(run_id)
            if held is not None and held.owner != owner and not held.is_stale(now):
                return "taken"
            self._db.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                (run_id, owner, socket.gethostname(), os.getpid(), now + lease),
            )
        return "claimed"

    def _claim_row(self, run_id: str) -> Claim | None:
        row = self._db.execute(
            "SELECT run_id, owner, host, pid, expires FROM claims WHERE run_id = ?", (run_id,)
        ).fetchone()
        return None if row is None else Claim(*row)

    def claim_of(self, run_id: str) -> Claim | None:
        """The claim on ``run_id`` (live or stale), or None."""
        try:
            return self._claim_row(run_id)
        except sqlite3.OperationalError:  # a store written before claims existed
            return None

    def renew_claims(self, owner: str, lease: float = 60.0) -> None:
        """Push the lease of every claim of ``owner`` to ``lease`` seconds from now."""
        try:
            with self._db:
                self._db.execute(
                    "UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease, owner)
                )
        except sqlite3.OperationalError:  # no claims table: nothing to renew
            pass

    def release_claims(self, owner: str, run_id: str | None = None) -> None:
        """Drop the claims of ``owner`` (on one run, or all of them)."""
        query, args = "DELETE FROM claims WHERE owner = ?", (owner,)
        if run_id is not None:
            query, args = query + " AND run_id = ?", (owner, run_id)
        try:
            with self._db:
                self._db.execute(query, args)
        except sqlite3.OperationalError:
            pass
