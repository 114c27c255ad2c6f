"""Results on disk: one SQLite file (WAL), a versioned schema, one transaction per run.

A run is written whole or not at all, so a sweep killed at any moment (Ctrl-C, SIGKILL)
leaves a consistent store, and rerunning it skips the runs already there.

A run is read back only in the shapes :meth:`Store.save` writes: cell, config, results and
versions JSON objects, a whole-number seed, metrics rows (step, name, number) and layer rows
(step, layer, name, number). A run that was edited out of those shapes (by hand, or by a
tool) is damaged: readers leave it out and :meth:`Store.damaged_runs` names it, a claim
finds it not stored, and saving the run again replaces it. So is a run whose results are
not what its experiment writes, when the store is given a check of results (the lab gives
:func:`leaky.lab.experiments.check_stored_results`; the store knows no experiment). An
empty file is no store: it is refused, and only a path where nothing is yet becomes a new
store.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "Claim", "DamagedRun", "ResultsCheck", "RunRecord", "Store"]

# (experiment name, a run's results) -> what is wrong with those results, or None.
ResultsCheck = Callable[[str, dict[str, Any]], str | None]

SCHEMA_VERSION = 1
_APPLICATION = "leaky"
_BUSY_SECONDS = 30.0  # how long an opener or writer waits for another process's transaction
# How long an opener that finds an empty file waits for the leaky process that may have just
# created it (sqlite creates the file a moment before that process locks it to write the
# schema); an empty file still empty and unlocked after that is not a store.
_CREATING_SECONDS = 3.0

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


def _is_empty(path: Path) -> bool:
    """A file of 0 bytes with no write-ahead log beside it: no database at all."""
    return path.is_file() and path.stat().st_size == 0 and not _has_log(path)


def _empty(path: Path, *, writing: bool) -> ValueError:
    fix = "pass another --store"
    if writing:  # e.g. left by `sqlite3 PATH` run before the first `leaky run`
        fix += ", or delete the empty file to start a new store there"
    return ValueError(f"{str(path)!r} is empty, not a leaky results store; {fix}")


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


@dataclass(frozen=True)
class DamagedRun:
    """A stored run not in the shapes the store writes: readers leave it out.

    ``problem`` says what is wrong, e.g. "its results are not valid JSON (...)".
    """

    run_id: str
    experiment: str
    problem: str


# Rows of a run's metrics and layer statistics the store did not write: a type sqlite kept
# (text that is no number stays text in a REAL column), found by one scan of each table.
_NUMBER = "typeof({}) NOT IN ('real', 'integer', 'null')"
_ROWS = {
    "metrics": (
        "step, name, value",
        "typeof(step) != 'integer' OR typeof(name) != 'text' OR " + _NUMBER.format("value"),
        "metrics to be rows of (whole-number step, name, number)",
    ),
    "layer_stats": (
        "step, layer, name, value",
        "typeof(step) != 'integer' OR typeof(layer) != 'text' OR typeof(name) != 'text' OR "
        + _NUMBER.format("value"),
        "layer statistics to be rows of (whole-number step, layer, name, number)",
    ),
}
_JSON_COLUMNS = ("cell", "config", "results", "versions")
_STATUSES = ("finished", "diverged")


def _json_object(column: str, text: object) -> tuple[dict[str, Any], str | None]:
    """``text`` (a column of a run) parsed as a JSON object, or what is wrong with it."""
    if not isinstance(text, str):
        return {}, f"Expected its {column} to be JSON text, but got {text!r}"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        return {}, f"its {column} are not valid JSON ({error})"
    if not isinstance(value, dict):
        kind = {list: "a list", str: "a string", bool: "true or false", type(None): "null"}
        got = kind.get(type(value), "a number")
        return {}, f"Expected its {column} to be a JSON object, but got {got}: {text[:40]}"
    return value, None


def _row_problem(row: tuple[Any, ...]) -> str | None:
    """What is wrong with a row of the runs table (its JSON columns aside), or None."""
    _, experiment, _, seed, _, status, seconds, *_ = row
    if not isinstance(experiment, str):
        return f"Expected its experiment to be a name, but got {experiment!r}"
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"Expected its seed to be a whole number, but got {seed!r}"
    if status not in _STATUSES:
        return f"Expected its status to be finished or diverged, but got {status!r}"
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return f"Expected its seconds to be a number, but got {seconds!r}"
    return None


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

    Only a path where no file is becomes a new store: an empty file (0 bytes) is refused by
    readers and writers alike, as something else named by mistake.

    Opening for writing creates the schema in one transaction that concurrent openers wait
    for, so several sweeps may start on a new path at once. ``readonly=True`` opens an
    existing store for reading only (``leaky report``): nothing is created or switched, and
    it works on a file or in a folder the caller may not write.

    ``check_results`` (also settable later) judges each stored run's results by its
    experiment's name; a run it finds wrong is damaged like a run out of the store's own
    shapes (:meth:`damaged_runs`). None: only the store's own shapes are checked.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        check_results: ResultsCheck | None = None,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.check_results = check_results
        if self.path.is_dir():
            raise ValueError(f"Expected a store file, but {str(self.path)!r} is a folder")
        if readonly:
            self._db = self._open_for_reading()
            return
        # Looked at before sqlite creates the file: an empty file is not made a store.
        found_empty = _is_empty(self.path)
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
            self._check_or_create(found_empty)
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
        if _is_empty(self.path):
            raise _empty(self.path, writing=False)
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

    def _check_or_create(self, found_empty: bool) -> None:
        # One write transaction, taken before looking: an opener that finds the file being
        # created waits (busy timeout) and then sees the whole schema, never half of it.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            tables = _tables(self._db)
            if found_empty and not tables:
                tables = self._wait_for_creator()
            self._check(self._db, tables)
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

    def _wait_for_creator(self) -> set[str]:
        """The tables of a file found empty, once the leaky process creating it wrote them.

        Called in a write transaction on a file that was empty when this opener came and
        has no tables. Another opener may have created it a moment ago and not yet locked
        it: give it ``_CREATING_SECONDS`` to write the schema. Still empty: the user named
        a file that is not a store (an empty file is refused, never filled).
        """
        deadline = time.monotonic() + _CREATING_SECONDS
        while True:
            self._db.rollback()
            if not _is_empty(self.path) or time.monotonic() > deadline:
                self._db.execute("BEGIN IMMEDIATE")
                tables = _tables(self._db)
                if not tables and _is_empty(self.path):
                    raise _empty(self.path, writing=True)
                return tables
            time.sleep(0.02)

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
        """Write one run, all of it or nothing; a run already stored is left as it is.

        A damaged run of the same id (see :meth:`damaged_runs`) is replaced, in the same
        transaction.
        """
        if self.readonly:
            raise ValueError(f"The store {self.path} is open read-only; open it to write")
        try:
            self._save(record)
        except sqlite3.Error as error:
            raise ValueError(f"Cannot write to the store {self.path}: {error}") from None

    def _save(self, record: RunRecord) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")  # look and write as one step
            if self._read(run_id=record.run_id)[1]:  # damaged: this run takes its place
                for table in ("metrics", "layer_stats", "runs"):
                    self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (record.run_id,))
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
        """Ids of the runs stored (for one experiment, or all), damaged runs left out."""
        with self._reading():
            return {record.run_id for record in self._read(experiment)[0]}

    def runs(self, experiment: str | None = None) -> list[RunRecord]:
        """Every stored run (of one experiment), with its metrics and layer statistics.

        Damaged runs are left out; :meth:`damaged_runs` names them.
        """
        with self._reading():
            return self._runs(experiment)

    def damaged_runs(self, experiment: str | None = None) -> list[DamagedRun]:
        """The stored runs (of one experiment) not in the shapes :meth:`save` writes.

        Examples:
            >>> import tempfile
            >>> path = Path(tempfile.mkdtemp()) / "results.db"
            >>> with Store(path) as store:
            ...     store.save(RunRecord("abc", "demo", {}, 0, {}, "finished", 0.5))
            >>> db = sqlite3.connect(path)  # a hand edit
            >>> _ = db.execute("UPDATE runs SET results = '[1]'"); db.commit(); db.close()
            >>> with Store(path) as store:
            ...     store.run_ids(), store.damaged_runs()[0].problem
            (set(), 'Expected its results to be a JSON object, but got a list: [1]')
        """
        with self._reading():
            return self._read(experiment)[1]

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        # A damaged page surfaces as a DatabaseError wherever a read touches it.
        try:
            yield
        except sqlite3.Error as error:
            raise self._error(error, "read") from None

    def _bad_rows(self, run_id: str | None) -> dict[str, str]:
        """Run id -> what is wrong with its metrics or layer rows (the first such row)."""
        problems: dict[str, str] = {}
        for table, (columns, bad, shape) in _ROWS.items():
            query, args = f"SELECT run_id, {columns} FROM {table} WHERE ({bad})", ()
            if run_id is not None:
                query, args = query + " AND run_id = ?", (run_id,)
            for found, *row in self._db.execute(query + " ORDER BY rowid", args):
                problems.setdefault(found, f"Expected its {shape}, but got {tuple(row)!r}")
        return problems

    def _read(
        self, experiment: str | None = None, *, run_id: str | None = None
    ) -> tuple[list[RunRecord], list[DamagedRun]]:
        """The runs (metrics and layer rows not loaded yet) and the damaged runs."""
        query = (
            "SELECT run_id, experiment, cell, seed, config, status, seconds, results, versions, "
            "created FROM runs"
        )
        where = [("experiment", experiment), ("run_id", run_id)]
        where = [(column, value) for column, value in where if value is not None]
        if where:
            query += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)
        bad_rows = self._bad_rows(run_id)
        records, damaged = [], []
        for row in self._db.execute(
            query + " ORDER BY experiment, cell, seed", [value for _, value in where]
        ):
            parsed = {}
            problem = _row_problem(row)
            for column, text in zip(_JSON_COLUMNS, (row[2], row[4], row[7], row[8]), strict=True):
                parsed[column], wrong = _json_object(column, text)
                problem = problem or wrong
            problem = problem or bad_rows.get(row[0])
            if problem is None and self.check_results is not None:
                problem = self.check_results(row[1], parsed["results"])
            if problem is not None:
                damaged.append(DamagedRun(str(row[0]), str(row[1]), problem))
                continue
            records.append(
                RunRecord(
                    run_id=row[0],
                    experiment=row[1],
                    cell=parsed["cell"],
                    seed=row[3],
                    config=parsed["config"],
                    status=row[5],
                    seconds=row[6],
                    results=parsed["results"],
                    versions=parsed["versions"],
                    created=row[9],
                )
            )
        damaged.sort(key=lambda run: (run.experiment, run.run_id))
        return records, damaged

    def _runs(self, experiment: str | None) -> list[RunRecord]:
        records = self._read(experiment)[0]
        for record in records:
            record.metrics = [
                (step, name, math.nan if value is None else float(value))  # NaN: NULL
                for step, name, value in self._db.execute(
                    "SELECT step, name, value FROM metrics WHERE run_id = ? ORDER BY rowid",
                    (record.run_id,),
                )
            ]
            record.layers = [
                (step, layer, name, math.nan if value is None else float(value))
                for step, layer, name, value in self._db.execute(
                    "SELECT step, layer, name, value FROM layer_stats WHERE run_id = ? "
                    "ORDER BY rowid",
                    (record.run_id,),
                )
            ]
        return records

    # Claims (see _CLAIMS): new methods only, so that opening a store stays as it is.

    def claim(self, run_id: str, owner: str, lease: float = 60.0) -> str:
        """Claim ``run_id`` for ``owner`` for ``lease`` seconds, in one transaction.

        Returns ``"claimed"`` (the caller may compute it), ``"stored"`` (it is in the store
        already, not damaged) or ``"taken"`` (another owner holds a live claim; see
        :meth:`claim_of`).

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
            if self._read(run_id=run_id)[0]:  # a damaged run is not stored: computed again
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
