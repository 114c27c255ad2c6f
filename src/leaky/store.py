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

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "RunRecord", "Store"]

SCHEMA_VERSION = 1
_APPLICATION = "leaky"

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
"""


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
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""  # UTC time the store wrote the run (set when read back)


class Store:
    """A results database. Opens (or creates) ``path``; refuses files that are not stores."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"Expected a store file, but {str(self.path)!r} is a folder")
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
        except (OSError, sqlite3.Error) as error:
            raise ValueError(f"Cannot open the store {self.path}: {error}") from None
        try:
            self._check_or_create(existed)
        except sqlite3.Error as error:
            self._db.close()
            raise ValueError(f"Cannot use the store {self.path}: {error}") from None
        except BaseException:
            self._db.close()
            raise

    def _check_or_create(self, existed: bool) -> None:
        try:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError:
            raise ValueError(
                f"{self.path} is not a leaky results store (not an SQLite database); "
                "choose another --store path"
            ) from None
        if existed and "meta" not in tables:
            raise ValueError(f"{self.path} is an SQLite file but not a leaky results store")
        if existed:
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            if meta.get("application") != _APPLICATION:
                raise ValueError(f"{self.path} is not a leaky results store")
            version = int(meta.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path} has store schema version {version}, but this leaky reads "
                    f"version {SCHEMA_VERSION}; use a new --store path or a matching leaky"
                )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('application', ?), ('schema_version', ?)",
                (_APPLICATION, str(SCHEMA_VERSION)),
            )

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, record: RunRecord) -> None:
        """Write one run, all of it or nothing; a run already stored is left as it is."""
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
        query, args = "SELECT run_id FROM runs", ()
        if experiment is not None:
            query, args = query + " WHERE experiment = ?", (experiment,)
        return {row[0] for row in self._db.execute(query, args)}

    def runs(self, experiment: str | None = None) -> list[RunRecord]:
        """Every stored run (of one experiment), with its metrics and layer statistics."""
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
