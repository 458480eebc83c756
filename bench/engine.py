"""Engine benchmark: simulated rollouts of 1,000 / 10,000 / 100,000 instances.

Zero-latency simulated instances, persistence on (SQLite in a temporary
file, the embedded default), the real shell and store, through the public
entry point ``sim.runner.simulate``. Each fleet size runs in its own process
so its peak memory is its own.

Beside the engine, the same run's own SQL replayed with the standard library's
``sqlite3`` (the raw replay baseline): a second process runs the same
scenario (same seed, virtual clock: the same statements) on a store opened here,
records every statement and its parameters as the DBAPI receives them
(SQLAlchemy's ``before_cursor_execute``) and every commit and rollback, and
counts the rows each INSERT/UPDATE/DELETE wrote (``cursor.rowcount``; for an
``executemany`` the sum over its parameter sets). Rows, statements and
transactions per upgrade count the rollout, from the run's ``INSERT INTO runs``
on; what came before (creating the fleet) is in the JSON's ``setup``. The
replay is the whole recording, as the engine's wall is the whole ``simulate``. The
statements go to a file in chunks, so even 1M instances stay in bounded memory.
Then, on a fresh database with the same schema (migrated the same way) and the
same pragmas (WAL, synchronous=NORMAL, foreign keys, busy timeout), it replays
them on as many ``sqlite3`` connections as the engine used, with the same
transaction boundaries: pysqlite's own implicit BEGIN before the first write,
as under SQLAlchemy, the engine's explicit ``BEGIN IMMEDIATE`` where it sent
one, and a commit or rollback where the engine's connection made one. SELECTs
are fetched to the end. Only executing is timed, not reading the chunks back.

Prints the machine, one line per fleet size (wall, upgrades/s min and median,
the raw replay's upgrades/s, raw/engine ratio, row writes and statements per
instance upgrade, peak RSS, makespan and the policy's lower bound on the
virtual clock) and, as the last line, a JSON list with one object per fleet
size: instances, upgradesPerSecond, peakRssMB, makespanSeconds,
lowerBoundSeconds, wallSeconds, rounds, batches (medians over ``--runs``), plus
upgradesPerSecondMin, rawReplayUpgradesPerSecond(Min), rawToEngineRatio,
rowWritesPerUpgrade (the rollout), rowWritesPerUpgradeWhole (creating the fleet
too), statementsPerUpgrade, transactionsPerUpgrade, setup, runs.

    python bench/engine.py                 # 1k, 10k, 100k
    python bench/engine.py --sizes 1000    # just one size
    python bench/engine.py --runs 3        # each size three times: min and median
    python bench/engine.py --sizes 1000000 # 1M instances (takes long; --no-replay halves it)
    python bench/engine.py --timings       # 60/30/20 s virtual latencies instead of zero
"""

from __future__ import annotations

import argparse
import json
import pickle
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, peak_rss_mb, spread

CHUNK = 20_000
"""Statements per pickled chunk of the recording (bounded memory at 1M instances)."""
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _scenario(size: int, timings: bool) -> Any:
    from scaleset.sim.scenario import Scenario

    scenario: dict[str, object] = {"scaleSet": {"sku": {"capacity": size}}, "seed": 1}
    if not timings:
        scenario["timings"] = {"reimageSeconds": 0, "bootSeconds": 0, "healthySeconds": 0}
    return Scenario.model_validate(scenario)


def _one(size: int, timings: bool) -> dict[str, object]:
    """The timed engine run: simulate alone, nothing listening on its SQL."""
    from scaleset.sim.runner import simulate

    scenario = _scenario(size, timings)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        start = time.perf_counter()
        report = simulate(scenario, database_url=url)
        wall = time.perf_counter() - start
    assert report.status == "Completed", report.status
    assert report.successful == size, (report.successful, size)
    return {
        "instances": size,
        "upgradesPerSecond": round(report.successful / wall, 1),
        "peakRssMB": peak_rss_mb(),
        "makespanSeconds": report.makespan_seconds,
        "lowerBoundSeconds": report.lower_bound_seconds,
        "wallSeconds": round(wall, 2),
        "rounds": report.rounds,
        "batches": len(report.batches),
        "upgrades": report.successful,
    }


class _Recorder:
    """Every statement the engine sends, with its parameters, to ``path`` in chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("wb")
        self.ops: list[tuple[Any, ...]] = []
        self.connections: dict[int, int] = {}
        # Counted from the run's INSERT on (the rollout); before it, creating the fleet.
        self.rollout = False
        self.counts = {phase: {"statements": 0, "rows": 0, "transactions": 0}
                       for phase in ("setup", "rollout")}

    def _count(self, what: str, n: int = 1) -> None:
        self.counts["rollout" if self.rollout else "setup"][what] += n

    def _conn(self, conn: Any) -> int:
        # The DBAPI connection, not SQLAlchemy's wrapper: the pool hands out the same one
        # again, and the replay needs one sqlite3 connection per DBAPI connection.
        key = id(conn.connection.dbapi_connection)
        return self.connections.setdefault(key, len(self.connections))

    def _add(self, op: tuple[Any, ...]) -> None:
        self.ops.append(op)
        if len(self.ops) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.ops:
            pickle.dump(self.ops, self.file, protocol=pickle.HIGHEST_PROTOCOL)
            self.ops = []

    def before(self, conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               many: bool) -> None:
        if not self.rollout and statement.lstrip().upper().startswith("INSERT INTO RUNS "):
            self.rollout = True
        self._count("statements")
        params = [tuple(p) for p in parameters] if many else tuple(parameters or ())
        self._add(("x", self._conn(conn), statement, params, many))

    def after(self, _conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any,
              many: bool) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in WRITES:
            count = cursor.rowcount
            self._count("rows", count if count >= 0 else (len(parameters) if many else 1))

    def begin(self, _conn: Any) -> None:
        self._count("transactions")  # pysqlite sends no BEGIN of its own here: counted only

    def commit(self, conn: Any) -> None:
        self._add(("c", self._conn(conn)))

    def rollback(self, conn: Any) -> None:
        self._add(("r", self._conn(conn)))

    def close(self) -> None:
        self.flush()
        self.file.close()


def _fresh_schema(path: Path) -> None:
    from scaleset.store.database import open_store

    open_store(f"sqlite:///{path}").close()


def _connect(path: Path) -> sqlite3.Connection:
    # As store/database.py's connect hook; pysqlite's default (deferred, implicit BEGIN
    # before the first write) is what SQLAlchemy runs on too.
    conn = sqlite3.connect(path, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                   "busy_timeout=5000"):
        conn.execute(f"PRAGMA {pragma}").fetchall()
    return conn


def _replay(recording: Path, database: Path, connections: int) -> float:
    """Execute the recording on ``database``; seconds spent executing."""
    conns = [_connect(database) for _ in range(max(1, connections))]
    spent = 0.0
    with recording.open("rb") as f:
        while True:
            try:
                ops = pickle.load(f)
            except EOFError:
                break
            start = time.perf_counter()
            for op in ops:
                conn = conns[op[1]]
                if op[0] == "x":
                    if op[4]:
                        conn.executemany(op[2], op[3])
                    else:
                        conn.execute(op[2], op[3]).fetchall()
                elif op[0] == "c":
                    conn.commit()
                else:
                    conn.rollback()
            spent += time.perf_counter() - start
    for conn in conns:
        conn.close()
    return spent


def _recorded(size: int, timings: bool, runs: int) -> dict[str, object]:
    """Record the engine's SQL for ``size``, count its writes, replay it ``runs`` times."""
    from sqlalchemy import event

    from scaleset.sim.runner import simulate
    from scaleset.store.database import open_store

    with tempfile.TemporaryDirectory() as tmp:
        recorder = _Recorder(Path(tmp) / "recording.pickle")
        store = open_store(f"sqlite:///{Path(tmp) / 'engine.db'}")
        for name, fn in (("before_cursor_execute", recorder.before),
                         ("after_cursor_execute", recorder.after), ("begin", recorder.begin),
                         ("commit", recorder.commit), ("rollback", recorder.rollback)):
            event.listen(store.engine, name, fn)
        try:
            report = simulate(_scenario(size, timings), store=store)
        finally:
            store.close()
            recorder.close()
        assert report.status == "Completed", report.status
        seconds = []
        for n in range(runs):
            database = Path(tmp) / f"replay{n}.db"
            _fresh_schema(database)
            seconds.append(_replay(recorder.path, database, len(recorder.connections)))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)
    upgrades = report.successful
    return {
        "upgrades": upgrades,
        "rawReplaySeconds": [round(s, 3) for s in seconds],
        "rollout": recorder.counts["rollout"],
        "setup": recorder.counts["setup"],
        "connections": len(recorder.connections),
    }


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _measure(size: int, timings: bool, runs: int, replay: bool) -> dict[str, Any]:
    flags = ["--timings"] if timings else []
    engine = [_child(["--one", str(size), *flags]) for _ in range(runs)]
    ups = [float(e["upgradesPerSecond"]) for e in engine]
    walls = [float(e["wallSeconds"]) for e in engine]
    first = engine[0]
    result: dict[str, Any] = {
        "instances": size,
        "upgradesPerSecond": round(statistics.median(ups), 1),
        "peakRssMB": max(float(e["peakRssMB"]) for e in engine),
        "makespanSeconds": first["makespanSeconds"],
        "lowerBoundSeconds": first["lowerBoundSeconds"],
        "wallSeconds": round(statistics.median(walls), 2),
        "rounds": first["rounds"],
        "batches": first["batches"],
        "upgradesPerSecondMin": round(min(ups), 1),
        "upgradesPerSecondRuns": ups,
        "runs": runs,
    }
    if replay:
        rec = _child(["--record", str(size), "--runs", str(runs), *flags])
        upgrades = int(rec["upgrades"])
        rollout = rec["rollout"]
        raw = [upgrades / s for s in rec["rawReplaySeconds"]]
        raw_min, raw_median = spread(raw)
        result.update({
            "rawReplayUpgradesPerSecond": round(raw_median, 1),
            "rawReplayUpgradesPerSecondMin": round(raw_min, 1),
            "rawReplaySeconds": rec["rawReplaySeconds"],
            "rawToEngineRatio": round(raw_median / statistics.median(ups), 2),
            "rowWrites": rollout["rows"],
            "rowWritesPerUpgrade": round(rollout["rows"] / upgrades, 2),
            "statements": rollout["statements"],
            "statementsPerUpgrade": round(rollout["statements"] / upgrades, 3),
            "transactions": rollout["transactions"],
            "transactionsPerUpgrade": round(rollout["transactions"] / upgrades, 4),
            "rowWritesPerUpgradeWhole": round(
                (rollout["rows"] + rec["setup"]["rows"]) / upgrades, 2),
            "setup": rec["setup"],
        })
    return result


HEADER = (f"{'instances':>10} {'wall s':>8} {'upgrades/s':>11} {'(min)':>9} {'raw/s':>9} "
          f"{'(min)':>9} {'raw/eng':>7} {'rows/upg':>8} {'(whole)':>8} {'stmts/upg':>9} "
          f"{'peak MB':>8} {'makespan s':>11} {'lower bound s':>14}")


def _row(r: dict[str, Any]) -> str:
    def get(key: str) -> object:
        return r.get(key, "-")

    return (f"{r['instances']:>10} {r['wallSeconds']:>8} {r['upgradesPerSecond']:>11} "
            f"{r['upgradesPerSecondMin']:>9} {get('rawReplayUpgradesPerSecond'):>9} "
            f"{get('rawReplayUpgradesPerSecondMin'):>9} {get('rawToEngineRatio'):>7} "
            f"{get('rowWritesPerUpgrade'):>8} {get('rowWritesPerUpgradeWhole'):>8} "
            f"{get('statementsPerUpgrade'):>9} "
            f"{r['peakRssMB']:>8} {r['makespanSeconds']:>11} {r['lowerBoundSeconds']:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat each size this many times (min and median printed)")
    parser.add_argument("--no-replay", dest="replay", action="store_false",
                        help="skip the recorded run and its raw sqlite3 replay")
    parser.add_argument("--timings", action="store_true",
                        help="use 60/30/20 s virtual latencies instead of zero")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.one, args.timings)))
        return
    if args.record is not None:
        print(json.dumps(_recorded(args.record, args.timings, args.runs)))
        return
    results = []
    print(f"machine: {machine()}")
    print(f"runs per size: {args.runs} (upgrades/s: median, then min; raw = the engine's own "
          "SQL replayed with sqlite3; rows and statements per upgrade: the rollout, and "
          "(whole) with creating the fleet)")
    print(HEADER, flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        result = _measure(size, args.timings, args.runs, args.replay)
        results.append(result)
        print(_row(result), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
