"""Startup and apply cost at scale, after a deploy, and against a minimal stdlib runner.

Run it from the project root::

    .venv/bin/python benchmarks/scale.py            # everything (15 minutes or more)
    .venv/bin/python benchmarks/scale.py --quick    # a smaller run (1 to 2 minutes)
    .venv/bin/python benchmarks/scale.py --only deploy,status --repeat 7

Every figure is the wall time of a fresh ``python`` process (or its peak RSS),
runs of the commands compared interleaved round by round, the median of the
rounds reported, and each compared with a minimal stdlib-only runner written
here and measured in the same run doing the same work: connect, read the
tracker, list the files; when applying, one transaction and commit per
migration with its tracker row. Bytecode is written and warm, as in an
installed app. The cases (``--only`` takes their names or numbers):

1. ``noop``: a start with nothing pending, right after the migrations were
   applied (the fingerprint is fresh), at each ``--sizes`` count.
2. ``deploy``: a start with nothing pending after a deploy that changed no
   migration but rebuilt the image: the app's tree is copied to new files (new
   inodes and change times, as an image build or ``cp -a`` gives) and swapped
   in at the same path. The first start after it, the second and the third,
   and a first start while another process holds the write lock.
3. ``apply``: a fresh database, all ``--apply-sizes`` migrations applied.
4. ``pending``: one migration pending on top of each ``--sizes`` count applied,
   the new file added to the same tree, and in a rebuilt tree.
5. ``status``: ``python -m selfmigrate status`` (and ``--json``) at ``--at``
   migrations against a stdlib reader, as a 30-second health check runs it.
6. ``flask``: ``selfmigrate.apply(app)`` in an app factory against
   ``selfmigrate.migrate()`` in the same kind of process, timed inside it.
7. ``namespace``: a migrations folder without ``__init__.py``, inside a
   package and outside one, against a regular package.
8. ``rss``: the peak RSS of a no-op start against the stdlib runner's.
9. ``message``: the length of the error when migration 1 of ``--fail-size``
   fails.

It relies only on the public promises (``selfmigrate.migrate``,
``selfmigrate.apply`` with ``SELFMIGRATE_DATABASE``/``SELFMIGRATE_MIGRATIONS``,
``python -m selfmigrate -d DB -m LOCATION status [--json]``, the tracker table
``schema_migrations`` with a ``version`` column), so it measures a restructured
library too. It never asserts a time: it prints figures, ratios and the goals
of issue 10 with met/MISSED; ``--check`` makes it exit 1 when a goal is
missed. Linux and macOS (per-process peak RSS comes from ``os.wait4``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import py_compile
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "benchapp"
SPEC = f"{PACKAGE}.migrations"
TRACKER = "schema_migrations"
STD_TRACKER = "std_migrations"

CASES = ("noop", "deploy", "apply", "pending", "status", "flask", "namespace", "rss", "message")
#: The order cases run in: ``apply`` first (its last databases serve the others),
#: ``deploy`` last (it leaves the trees rebuilt).
RUN_ORDER = ("apply", "noop", "rss", "flask", "namespace", "status", "message", "pending", "deploy")

# --- the commands, each run as ``python -c CODE ARG...`` --------------------------------------

SM_NOOP = """\
import sys
import selfmigrate
selfmigrate.migrate(sys.argv[1], sys.argv[2])
"""

SM_NOOP_NO_BACKUP = """\
import sys
import selfmigrate
try:
    selfmigrate.migrate(sys.argv[1], sys.argv[2], backup=False)
except TypeError:
    sys.exit(99)  # the option is gone: reported as n/a
"""

#: The minimal runner on a start with nothing pending: connect, read the tracker, list the files.
STD_NOOP = f"""\
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
applied = {{row[0] for row in conn.execute("SELECT version FROM {TRACKER}")}}
folder = sys.argv[2]
files = sorted(f for f in os.listdir(folder) if f.endswith((".sql", ".py")) and f[0] not in "_.")
pending = [f for f in files if int(f.split("_", 1)[0]) not in applied]
conn.close()
sys.exit(1 if pending else 0)
"""

#: The same plus one ``stat`` of each file (relative to the open folder, the cheapest call): the
#: least a start that catches an edit of an applied file without reading it does (the change
#: time is the only thing an in-place edit is sure to change). A reference, not a goal.
STD_NOOP_STAT = f"""\
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
applied = {{row[0] for row in conn.execute("SELECT version FROM {TRACKER}")}}
folder = sys.argv[2]
fd = os.open(folder, os.O_RDONLY)
files = sorted(f for f in os.listdir(fd) if f.endswith((".sql", ".py")) and f[0] not in "_.")
times = [os.stat(f, dir_fd=fd).st_ctime_ns for f in files]
pending = [f for f in files if int(f.split("_", 1)[0]) not in applied]
conn.close()
sys.exit(1 if pending else 0)
"""

#: The same plus reading and hashing every file: what verifying the files costs (a reference
#: for the first start after a deploy, which must verify them).
STD_NOOP_CHECKSUMS = f"""\
import hashlib, os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
applied = {{row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM {TRACKER}")}}
folder = sys.argv[2]
files = sorted(f for f in os.listdir(folder) if f.endswith((".sql", ".py")) and f[0] not in "_.")
differ = 0
for name in files:
    with open(os.path.join(folder, name), "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data.replace(b"\\r\\n", b"\\n").replace(b"\\r", b"\\n")).hexdigest()
    differ += applied.get(int(name.split("_", 1)[0])) != digest
conn.close()
"""

#: The minimal runner applying what is pending: one transaction and commit per migration,
#: with its tracker row (version, name, checksum, applied_at, duration).
STD_APPLY = f"""\
import hashlib, importlib.util, os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute(
    "CREATE TABLE IF NOT EXISTS {STD_TRACKER} (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " checksum TEXT NOT NULL, applied_at TEXT NOT NULL, duration_ms REAL NOT NULL)"
)
applied = {{row[0] for row in conn.execute("SELECT version FROM {STD_TRACKER}")}}
folder = sys.argv[2]
files = sorted(
    (f for f in os.listdir(folder) if f.endswith((".sql", ".py")) and f[0] not in "_."),
    key=lambda f: int(f.split("_", 1)[0]),
)
for name in files:
    version = int(name.split("_", 1)[0])
    if version in applied:
        continue
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
        data = f.read()
    checksum = hashlib.sha256(data.replace(b"\\r\\n", b"\\n").replace(b"\\r", b"\\n")).hexdigest()
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if name.endswith(".sql"):
            statement = ""
            for line in data.decode().split("-- migrate:down", 1)[0].splitlines(keepends=True):
                statement += line
                if sqlite3.complete_statement(statement):
                    conn.execute(statement)
                    statement = ""
        else:
            spec = importlib.util.spec_from_file_location(f"migration_{{version}}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.up(conn)
        conn.execute(
            "INSERT INTO {STD_TRACKER} VALUES (?, ?, ?, ?, ?)",
            (version, name, checksum, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             (time.perf_counter() - started) * 1000.0),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
conn.close()
"""

#: A stdlib health check: what ``status`` reports, from the tracker and the folder.
STD_STATUS = f"""\
import os, sqlite3, sys
db, folder = sys.argv[1], sys.argv[2]
conn = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
applied = {{row[0] for row in conn.execute("SELECT version FROM {TRACKER}")}}
files = sorted(f for f in os.listdir(folder) if f.endswith((".sql", ".py")) and f[0] not in "_.")
pending = [f for f in files if int(f.split("_", 1)[0]) not in applied]
conn.close()
JSON
"""
STD_STATUS_TEXT = STD_STATUS.replace(
    "JSON",
    'print(f"{db}: version {max(applied, default=None)}, {len(pending)} pending"'
    ' + (" - up to date" if not pending else ""))\nsys.exit(1 if pending else 0)',
)
STD_STATUS_JSON = STD_STATUS.replace(
    "JSON",
    "import json\n"
    'print(json.dumps({"database": db, "state": "pending" if pending else "up to date",'
    ' "current_version": max(applied, default=None), "pending": [int(f.split("_", 1)[0]) for f in pending]},'
    " indent=2))\nsys.exit(1 if pending else 0)",
)

FLASK_APPLY = """\
import sys, time
import flask
import selfmigrate
app = flask.Flask("benchapp")
app.config["SELFMIGRATE_DATABASE"] = sys.argv[1]
app.config["SELFMIGRATE_MIGRATIONS"] = sys.argv[2]
started = time.perf_counter()
selfmigrate.apply(app)
print((time.perf_counter() - started) * 1000.0)
"""

FLASK_MIGRATE = """\
import sys, time
import flask
import selfmigrate
app = flask.Flask("benchapp")
app.config["SELFMIGRATE_DATABASE"] = sys.argv[1]
app.config["SELFMIGRATE_MIGRATIONS"] = sys.argv[2]
started = time.perf_counter()
selfmigrate.migrate(app.config["SELFMIGRATE_DATABASE"], app.config["SELFMIGRATE_MIGRATIONS"])
print((time.perf_counter() - started) * 1000.0)
"""

#: How many selfmigrate modules a no-op start loads (a sign of the path taken, not timed).
SM_MODULES = """\
import sys
import selfmigrate
selfmigrate.migrate(sys.argv[1], sys.argv[2])
print(sum(1 for name in sys.modules if name == "selfmigrate" or name.startswith("selfmigrate.")))
"""

SM_FAIL = """\
import json, sys, time
import selfmigrate
started = time.perf_counter()
try:
    selfmigrate.migrate(sys.argv[1], sys.argv[2])
except Exception as e:
    message = str(e)
    print(json.dumps({"type": type(e).__name__, "bytes": len(message.encode()), "lines": message.count("\\n") + 1,
                      "ms": (time.perf_counter() - started) * 1000.0, "text": message}))
else:
    print(json.dumps({"type": None}))
"""

LOCK_HOLDER = """\
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


#: Wraps a command so that it reports its own peak RSS (VmHWM) when it exits, however it exits.
#: ``os.wait4``'s ``ru_maxrss`` cannot be used: it carries the parent's peak over the fork and exec.
RSS_WRAPPER = """\
try:
{code}
finally:
    import sys as _sys
    try:
        with open("/proc/self/status") as _status:
            _sys.stderr.write("".join("\\nVMHWM " + _l.split()[1] for _l in _status if _l.startswith("VmHWM:")))
    except OSError:
        pass
"""


def with_rss(code: str) -> str:
    """``code`` wrapped to report its peak RSS in kB on stderr (Linux; elsewhere nothing)."""
    return RSS_WRAPPER.format(code=textwrap.indent(code, "    "))


def peak_rss_kb(result: Result) -> float | None:
    """The peak RSS a command wrapped by :func:`with_rss` reported, in kB."""
    for line in reversed(result.stderr.splitlines()):
        if line.startswith("VMHWM "):
            return float(line.split()[1])
    return None


# --- running processes ------------------------------------------------------------------------


@dataclass
class Result:
    """One finished process."""

    ms: float
    maxrss_kb: float
    rc: int
    stdout: str
    stderr: str


@dataclass
class Cmd:
    """A command to time, with what to do before it (untimed) and how to check it."""

    label: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    prepare: t.Callable[[], object] | None = None
    after: t.Callable[[], object] | None = None
    expect: tuple[int, ...] = (0,)
    timeout: float | None = None


def run(argv: list[str], env: dict[str, str], cwd: str, timeout: float | None = None) -> Result:
    """Run one process; its wall time from spawn to reap, and its own peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, lambda: os.kill(process.pid, signal.SIGKILL))
            timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        if timer is not None:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    result = Result(elapsed * 1000.0, 0.0, process.returncode, stdout, stderr)
    # ru_maxrss (kB on Linux, bytes on macOS) is only an upper bound: it includes the
    # parent's peak carried over the fork; a command wrapped by with_rss() reports its own.
    own = peak_rss_kb(result)
    result.maxrss_kb = own if own is not None else usage.ru_maxrss / (1024.0 if sys.platform == "darwin" else 1.0)
    return result


def python(code: str, *args: object) -> list[str]:
    """``python -c code args`` with the interpreter running this script."""
    return [sys.executable, "-c", code, *map(str, args)]


def run_checked(cmd: Cmd) -> Result:
    if cmd.prepare is not None:
        cmd.prepare()
    try:
        result = run(cmd.argv, cmd.env, cmd.cwd, cmd.timeout)
    finally:
        if cmd.after is not None:
            cmd.after()
    if result.rc not in cmd.expect and not (cmd.timeout is not None and result.rc == -signal.SIGKILL):
        raise SystemExit(
            f"{cmd.label}: exit code {result.rc} (expected {cmd.expect})\n"
            f"{result.stdout[-2000:]}{result.stderr[-4000:]}"
        )
    return result


def measure(
    cmds: list[Cmd],
    rounds: int,
    budget: float,
    warmup: int = 1,
    before_round: t.Callable[[], object] | None = None,
    alternate: bool = True,
) -> dict[str, list[Result]]:
    """Run the commands interleaved, ``rounds`` times (fewer when a round exceeds ``budget``/rounds).

    ``alternate`` reverses the order every other round, so that neither command
    always runs right after the other; cases where the order is the point pass False.
    """
    for _ in range(warmup):
        if before_round is not None:
            before_round()
        for cmd in cmds:
            run_checked(cmd)
    results: dict[str, list[Result]] = {cmd.label: [] for cmd in cmds}
    started = time.perf_counter()
    planned = rounds
    for number in range(rounds):
        if number >= planned:
            break
        if before_round is not None:
            before_round()
        order = cmds if not alternate or number % 2 == 0 else cmds[::-1]
        for cmd in order:
            results[cmd.label].append(run_checked(cmd))
        if number == 0:
            per_round = time.perf_counter() - started
            planned = max(1, min(rounds, int(budget // per_round) if per_round > 0 else rounds))
    return results


# --- the projects -----------------------------------------------------------------------------


def migration_source(version: int, width: int, fail_first: bool = False) -> tuple[str, str]:
    """The file name and text of migration ``version``: each does a small, constant amount of work.

    Migration 1 creates two tables; the others insert a row and bump a counter,
    odd ones in ``.sql`` (two statements and a down section), even ones in ``.py``.
    Constant work keeps SQLite's own cost flat, so that any growth with N is the runner's.
    """
    if version == 1:
        broken = "INSERT INTO no_such_table VALUES (1);\n" if fail_first else ""
        return f"{1:0{width}d}_create_events.sql", (
            "-- The tables the other migrations fill.\n"
            "CREATE TABLE events (id INTEGER PRIMARY KEY, value TEXT NOT NULL);\n"
            "CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);\n"
            "INSERT INTO counters VALUES ('migrations', 1);\n"
            f"{broken}"
            "-- migrate:down\nDROP TABLE counters;\nDROP TABLE events;\n"
        )
    if version % 2:
        return f"{version:0{width}d}_event_{version}.sql", (
            f"-- Record event {version}.\n"
            f"INSERT INTO events (value) VALUES ('v{version}');\n"
            "UPDATE counters SET n = n + 1 WHERE name = 'migrations';\n"
            f"-- migrate:down\nDELETE FROM events WHERE value = 'v{version}';\n"
        )
    return f"{version:0{width}d}_event_{version}.py", textwrap.dedent(
        f'''\
        """Record event {version}."""


        def up(conn):
            conn.execute("INSERT INTO events (value) VALUES (?)", ("v{version}",))
            conn.execute("UPDATE counters SET n = n + 1 WHERE name = 'migrations'")


        def down(conn):
            conn.execute("DELETE FROM events WHERE value = ?", ("v{version}",))
        '''
    )


def write_migrations(folder: Path, count: int, *, init: bool = True, fail_first: bool = False) -> None:
    """Write migrations 1..count into ``folder`` (a package when ``init``), with warm bytecode."""
    folder.mkdir(parents=True)
    if init:
        (folder / "__init__.py").write_text("")
    width = max(4, len(str(count)))
    for version in range(1, count + 1):
        name, text = migration_source(version, width, fail_first)
        (folder / name).write_text(text)
    compile_tree(folder)


def compile_tree(folder: Path) -> None:
    """Write the ``.pyc`` files an import would write, so that no timed run compiles."""
    compileall.compile_dir(str(folder), quiet=1, workers=1, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)


def count_rows(database: Path, table: str) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


@dataclass
class Project:
    """An app tree ``root/benchapp/migrations`` of ``count`` migrations and its two databases."""

    root: Path
    count: int
    env: dict[str, str]
    sm_ready: bool = False
    std_ready: bool = False

    @property
    def folder(self) -> Path:
        return self.root / PACKAGE / "migrations"

    @property
    def sm_db(self) -> Path:
        return self.root / "sm" / "app.sqlite"

    @property
    def std_db(self) -> Path:
        return self.root / "std" / "app.sqlite"

    def sm_apply_cmd(self, label: str) -> Cmd:
        return Cmd(
            label, python(SM_NOOP, self.sm_db, SPEC), self.env, str(self.root), prepare=lambda: clear(self.sm_db.parent)
        )

    def std_apply_cmd(self, label: str) -> Cmd:
        return Cmd(
            label,
            python(STD_APPLY, self.std_db, self.folder),
            self.env,
            str(self.root),
            prepare=lambda: clear(self.std_db.parent),
        )

    def ensure_sm(self) -> None:
        """A selfmigrate database with every migration applied (untimed setup)."""
        if self.sm_ready:
            return
        started = time.perf_counter()
        run_checked(self.sm_apply_cmd("setup"))
        self.sm_ready = True
        note(f"setup: selfmigrate applied {self.count} migrations in {time.perf_counter() - started:.1f} s")

    def ensure_std(self) -> None:
        if self.std_ready:
            return
        started = time.perf_counter()
        run_checked(self.std_apply_cmd("setup"))
        self.std_ready = True
        note(f"setup: the stdlib runner applied {self.count} migrations in {time.perf_counter() - started:.1f} s")

    def deploy(self) -> None:
        """Rebuild the app tree as an image build does: new files (new inodes, ctimes) at the same path.

        ``copytree`` copies with ``copy2``, which keeps the contents and the
        modification times (so the bytecode stays valid), as ``cp -a`` does.
        """
        app = self.root / PACKAGE
        built = self.root / f"{PACKAGE}.new"
        old = self.root / f"{PACKAGE}.old"
        shutil.rmtree(built, ignore_errors=True)
        shutil.copytree(app, built, symlinks=True)
        os.rename(app, old)
        os.rename(built, app)
        shutil.rmtree(old)


class Bench:
    """The run's settings, projects and results."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.projects: dict[int, Project] = {}
        self.base_env = dict(os.environ)
        # An installed app starts from cached bytecode; with PYTHONDONTWRITEBYTECODE set
        # (some shells and CI set it) every run would compile from source and time the compiler.
        self.base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.base_env.pop("SELFMIGRATE_DATABASE", None)
        self.base_env.pop("SELFMIGRATE_MIGRATIONS", None)
        self.rows: list[dict[str, object]] = []
        self.goals: list[dict[str, object]] = []

    def env_for(self, root: Path) -> dict[str, str]:
        paths = [str(root), self.base_env.get("PYTHONPATH", "")]
        return {**self.base_env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}

    def project(self, count: int) -> Project:
        if count not in self.projects:
            root = self.root / f"n{count}"
            (root / PACKAGE).mkdir(parents=True)
            (root / PACKAGE / "__init__.py").write_text("")
            write_migrations(root / PACKAGE / "migrations", count)
            compile_tree(root / PACKAGE)
            self.projects[count] = Project(root, count, self.env_for(root))
        return self.projects[count]

    @property
    def rounds(self) -> int:
        return int(self.args.repeat)

    @property
    def budget(self) -> float:
        return float(self.args.budget)

    # --- reporting ---

    def table(
        self,
        title: str,
        results: dict[str, list[Result]],
        base: str | None,
        *,
        metric: str = "ms",
        per: int | None = None,
        extra: dict[str, str] | None = None,
    ) -> dict[str, float]:
        """Print one table; return each label's median."""
        print(f"\n{title}")
        unit = "MB" if metric == "rss" else "ms"
        head = f"  {'':50} {'runs':>4} {'median ' + unit:>11} {'min ' + unit:>9} {'ratio':>7}"
        if per:
            head += f" {'ms/migr.':>9}"
        print(head)
        medians = {}
        for label, values in results.items():
            numbers = [v.maxrss_kb / 1024.0 if metric == "rss" else v.ms for v in values]
            medians[label] = statistics.median(numbers)
        for label, values in results.items():
            numbers = [v.maxrss_kb / 1024.0 if metric == "rss" else v.ms for v in values]
            ratio = f"{medians[label] / medians[base]:6.2f}x" if base and base in medians else ""
            line = f"  {label:50} {len(numbers):4d} {medians[label]:11.1f} {min(numbers):9.1f} {ratio:>7}"
            if per:
                line += f" {medians[label] / per:9.3f}"
            if extra and label in extra:
                line += f"  {extra[label]}"
            print(line)
            self.rows.append(
                {
                    "table": title,
                    "label": label,
                    "metric": metric,
                    "runs": len(numbers),
                    "median": medians[label],
                    "min": min(numbers),
                    "ratio": medians[label] / medians[base] if base and base in medians else None,
                }
            )
        return medians

    def goal(self, text: str, value: float | None, limit: float, unit: str = "x") -> None:
        if value is None:
            state = "not measured"
            shown = "n/a"
        else:
            state = "met" if value <= limit else "MISSED"
            shown = f"{value:.2f}{unit}" if unit == "x" else f"{value:.1f} {unit}"
        self.goals.append({"goal": text, "value": value, "limit": limit, "unit": unit, "state": state})
        print(f"  goal: {text}: {shown} (limit {limit:g}{unit if unit == 'x' else ' ' + unit}) {state}")

    # --- the cases ---

    def case_noop(self) -> None:
        """1. No-op start right after the migrations were applied."""
        for count in self.args.sizes:
            p = self.project(count)
            p.ensure_sm()
            cmds = [
                Cmd("selfmigrate.migrate() no-op", python(SM_NOOP, p.sm_db, SPEC), p.env, str(p.root)),
                Cmd("stdlib runner", python(STD_NOOP, p.sm_db, p.folder), p.env, str(p.root)),
                Cmd("stdlib runner + stat every file", python(STD_NOOP_STAT, p.sm_db, p.folder), p.env, str(p.root)),
                Cmd(
                    "stdlib runner + read and hash every file",
                    python(STD_NOOP_CHECKSUMS, p.sm_db, p.folder),
                    p.env,
                    str(p.root),
                ),
                Cmd("python -c pass (interpreter start)", python("pass"), p.env, str(p.root)),
            ]
            results = measure(cmds, self.rounds, self.budget, warmup=2)
            medians = self.table(
                f"[1 noop] no-op start right after applying, {count} applied", results, "stdlib runner"
            )
            floor = medians["stdlib runner + stat every file"]
            print(
                f"  reference: one stat per file (what catching an in-place edit costs at least) is"
                f" {floor / medians['stdlib runner']:.2f}x the stdlib runner; selfmigrate is"
                f" {medians['selfmigrate.migrate() no-op'] / floor:.2f}x that"
            )
            self.goal(
                f"no-op start at {count} <= 1.3x stdlib runner",
                medians["selfmigrate.migrate() no-op"] / medians["stdlib runner"],
                1.3,
            )

    def case_deploy(self) -> None:
        """2. No-op start after a deploy that rebuilt the image and changed no migration."""
        for count in self.args.sizes:
            p = self.project(count)
            p.ensure_sm()
            holder: list[subprocess.Popen[str]] = []

            def lock(p: Project = p, holder: list[subprocess.Popen[str]] = holder) -> None:
                p.deploy()
                process = subprocess.Popen(
                    python(LOCK_HOLDER, p.sm_db),
                    env=p.env,
                    cwd=str(p.root),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert process.stdout is not None
                if process.stdout.readline().strip() != "locked":
                    raise SystemExit("the lock holder could not take the write lock")
                holder.append(process)

            def unlock(holder: list[subprocess.Popen[str]] = holder) -> None:
                process = holder.pop()
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=30)

            sm = python(SM_NOOP, p.sm_db, SPEC)
            cap = float(self.args.lock_cap)
            cmds = [
                Cmd("1st start after the deploy", sm, p.env, str(p.root)),
                Cmd("stdlib runner", python(STD_NOOP, p.sm_db, p.folder), p.env, str(p.root)),
                Cmd("2nd start", sm, p.env, str(p.root)),
                Cmd(
                    "stdlib runner + read and hash every file",
                    python(STD_NOOP_CHECKSUMS, p.sm_db, p.folder),
                    p.env,
                    str(p.root),
                ),
                Cmd("3rd start", sm, p.env, str(p.root)),
                Cmd(
                    "1st start after a deploy, write lock held",
                    sm,
                    p.env,
                    str(p.root),
                    prepare=lock,
                    after=unlock,
                    timeout=cap,
                ),
            ]
            results = measure(cmds, self.rounds, self.budget, warmup=1, before_round=p.deploy, alternate=False)
            locked = results["1st start after a deploy, write lock held"]
            waited = sum(1 for r in locked if r.rc == -signal.SIGKILL)
            extra = {"1st start after a deploy, write lock held": f"killed after {cap:g} s: {waited}" if waited else ""}
            medians = self.table(
                f"[2 deploy] no-op start after a deploy that rebuilt the tree (copied to new files), {count} applied",
                results,
                "stdlib runner",
                extra=extra,
            )
            std = medians["stdlib runner"]
            self.goal(f"deploy, 2nd start at {count} <= 1.3x stdlib runner", medians["2nd start"] / std, 1.3)
            self.goal(f"deploy, 3rd start at {count} <= 1.3x stdlib runner", medians["3rd start"] / std, 1.3)
            self.goal(
                f"deploy at {count}, 1st start with the write lock held / without (does not wait)",
                # A start that had to be killed waited for the lock: missed, whatever the median.
                float("inf")
                if waited
                else medians["1st start after a deploy, write lock held"] / medians["1st start after the deploy"],
                1.5,
            )
            self.guarantee_edit_caught(p)

    def guarantee_edit_caught(self, p: Project) -> None:
        """The fast path must still catch an edited applied migration (same size, mtime set back)."""
        target = next(f for f in p.folder.iterdir() if f.suffix == ".sql" and int(f.name.split("_", 1)[0]) == 3)
        before = target.stat()
        text = target.read_bytes()
        edited = text.replace(b"v", b"w", 1)
        assert len(edited) == len(text) and edited != text
        try:
            target.write_bytes(edited)
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
            result = run(python(SM_NOOP, p.sm_db, SPEC), p.env, str(p.root))
        finally:
            target.write_bytes(text)
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        caught = result.rc != 0
        print(
            f"  guarantee: an edited applied migration ({target.name}, same size and mtime) is "
            f"{'caught (exit ' + str(result.rc) + ')' if caught else 'NOT caught'}"
        )
        self.goals.append(
            {
                "goal": f"edit of an applied migration caught at {p.count}",
                "value": None,
                "limit": None,
                "unit": "",
                "state": "met" if caught else "MISSED",
            }
        )

    def case_apply(self) -> None:
        """3. Fresh apply of N migrations, one transaction and commit each."""
        medians: dict[int, tuple[float, float]] = {}
        for count in self.args.apply_sizes:
            p = self.project(count)
            sm = p.sm_apply_cmd("selfmigrate.migrate() fresh apply")
            std = p.std_apply_cmd("stdlib runner (1 commit per migration)")
            results = measure([sm, std], self.rounds, self.budget, warmup=1 if count <= 100 else 0)
            p.sm_ready = p.std_ready = True
            got = count_rows(p.sm_db, TRACKER)
            extra = {sm.label: "" if got == count else f"tracker rows: {got} (expected {count})"}
            m = self.table(f"[3 apply] fresh apply, N = {count}", results, std.label, per=count, extra=extra)
            medians[count] = (m[sm.label], m[std.label])
        print("\n  N        selfmigrate ms  stdlib ms   ratio  sm ms/migr.  std ms/migr.  sm marginal ms/migr.")
        first = medians.get(1)
        for count, (a, b) in medians.items():
            marginal = f"{(a - first[0]) / (count - 1):10.3f}" if first and count > 1 else f"{'':>10}"
            print(f"  {count:<8} {a:14.1f} {b:10.1f} {a / b:6.2f}x {a / count:12.3f} {b / count:13.3f}  {marginal}")
        for count, limit in ((1, 1.6), (100, 1.3), (1000, 1.3), (10000, 1.3)):
            value = medians[count][0] / medians[count][1] if count in medians else None
            self.goal(f"fresh apply at N = {count} <= {limit}x stdlib runner", value, limit)

    def case_pending(self) -> None:
        """4. One pending migration on top of N applied: added to the same tree, and in a rebuilt tree."""
        for count in self.args.sizes:
            p = self.project(count)
            p.ensure_sm()
            p.ensure_std()
            base = self.root / f"pending{count}"
            shutil.rmtree(base, ignore_errors=True)
            name, text = migration_source(count + 1, max(4, len(str(count))))
            # The rebuilt tree: every file new, as after an image build that added the migration.
            shutil.copytree(p.root / PACKAGE, base / PACKAGE, symlinks=True)
            (base / PACKAGE / "migrations" / name).write_text(text)
            compile_tree(base / PACKAGE / "migrations")
            rebuilt_env = self.env_for(base)

            def copier(source: Path, dest: Path) -> t.Callable[[], None]:
                def copy() -> None:
                    clear(dest.parent)
                    shutil.copyfile(source, dest)

                return copy

            def db(key: str, base: Path = base) -> Path:
                return base / key / "app.sqlite"

            same = "selfmigrate.migrate(), file added to the same tree"
            cmds = [
                Cmd(same, python(SM_NOOP, db("sm"), SPEC), p.env, str(p.root), prepare=copier(p.sm_db, db("sm"))),
                Cmd(
                    "stdlib runner",
                    python(STD_APPLY, db("std"), p.folder),
                    p.env,
                    str(p.root),
                    prepare=copier(p.std_db, db("std")),
                ),
                Cmd(
                    "  the same with backup=False (no snapshot)",
                    python(SM_NOOP_NO_BACKUP, db("sm2"), SPEC),
                    p.env,
                    str(p.root),
                    prepare=copier(p.sm_db, db("sm2")),
                    expect=(0, 99),
                ),
                Cmd(
                    "selfmigrate.migrate(), in a rebuilt tree",
                    python(SM_NOOP, db("smr"), SPEC),
                    rebuilt_env,
                    str(base),
                    prepare=copier(p.sm_db, db("smr")),
                ),
            ]
            added = p.folder / name
            added.write_text(text)
            try:
                results = measure(cmds, self.rounds, self.budget, warmup=1)
            finally:
                # Gone again, the tree lists the files the fingerprint was taken of.
                added.unlink()
            if any(r.rc == 99 for r in results[cmds[2].label]):
                del results[cmds[2].label]
            extra = {}
            for cmd, key in ((cmds[0], "sm"), (cmds[3], "smr")):
                got = count_rows(db(key), TRACKER)
                extra[cmd.label] = "" if got == count + 1 else f"tracker rows: {got} (expected {count + 1})"
            medians = self.table(
                f"[4 pending] apply 1 pending on top of {count} applied (defaults: a snapshot is taken first)",
                results,
                "stdlib runner",
                extra=extra,
            )
            if count == 10000:
                ratio = medians[same] / medians["stdlib runner"]
                self.goal("apply 1 pending on top of 10000 <= 1.5x stdlib runner", ratio, 1.5)

    def case_status(self) -> None:
        """5. ``python -m selfmigrate status`` as a health check, against a stdlib reader."""
        p = self.project(self.args.at)
        p.ensure_sm()
        cli = [sys.executable, "-m", "selfmigrate", "-d", str(p.sm_db), "-m", SPEC, "status"]
        cmds = [
            Cmd("python -m selfmigrate status", cli, p.env, str(p.root)),
            Cmd("stdlib reader", python(STD_STATUS_TEXT, p.sm_db, p.folder), p.env, str(p.root)),
            Cmd("python -m selfmigrate status --json", [*cli, "--json"], p.env, str(p.root)),
            Cmd("stdlib reader, JSON", python(STD_STATUS_JSON, p.sm_db, p.folder), p.env, str(p.root)),
        ]
        results = measure(cmds, self.rounds, self.budget, warmup=2)
        medians = self.table(f"[5 status] health check at {p.count} migrations, up to date", results, "stdlib reader")
        self.goal(
            f"status at {p.count} <= 2x stdlib reader",
            medians["python -m selfmigrate status"] / medians["stdlib reader"],
            2.0,
        )
        self.goal(
            f"status --json at {p.count} <= 2x stdlib reader (JSON)",
            medians["python -m selfmigrate status --json"] / medians["stdlib reader, JSON"],
            2.0,
        )

    def case_flask(self) -> None:
        """6. ``apply(app)`` against ``migrate()``, timed inside the process, no-op start."""
        p = self.project(self.args.at)
        p.ensure_sm()
        cmds = [
            Cmd("apply(app) in a Flask app factory", python(FLASK_APPLY, p.sm_db, SPEC), p.env, str(p.root)),
            Cmd("migrate() in the same kind of process", python(FLASK_MIGRATE, p.sm_db, SPEC), p.env, str(p.root)),
        ]
        results = measure(cmds, self.rounds, self.budget, warmup=2)
        inside = {label: statistics.median(float(r.stdout.split()[-1]) for r in rs) for label, rs in results.items()}
        extra = {label: f"the call alone: {ms:.2f} ms" for label, ms in inside.items()}
        self.table(
            f"[6 flask] no-op start at {p.count} in a process that imported Flask and built an app",
            results,
            cmds[1].label,
            extra=extra,
        )
        difference = inside[cmds[0].label] - inside[cmds[1].label]
        print(f"  apply(app) - migrate(), the call alone (median): {difference:+.2f} ms")
        self.goal("apply(app) - migrate() on a no-op start <= 1 ms", difference, 1.0, unit="ms")

    def case_namespace(self) -> None:
        """7. A migrations folder without ``__init__.py``: does the no-op start get the fast path?"""
        source = self.project(self.args.at)
        base = self.root / "namespace"
        shutil.rmtree(base, ignore_errors=True)
        layouts: list[tuple[str, Path, str, Path]] = []
        # (label, folder, the location passed to migrate(), the sys.path root)
        variants = (
            ("package with __init__.py (reference)", "pkg", "nsapp_pkg/migrations", "nsapp_pkg.migrations", True),
            ("in a package, no __init__.py, by name", "inpkg", "nsapp_in/migrations", "nsapp_in.migrations", False),
            ("outside a package, no __init__.py, by name", "top", "ns_migrations", "ns_migrations", False),
            ("outside a package, no __init__.py, by path", "path", "migrations", "", False),
        )
        for label, key, relative, spec, init in variants:
            root = base / key
            folder = root / relative
            if "/" in relative:
                (folder.parent).mkdir(parents=True)
                (folder.parent / "__init__.py").write_text("")
            write_migrations(folder, source.count, init=init)
            location = spec or str(folder)
            layouts.append((label, folder, location, root))
        cmds = []
        for label, _, location, root in layouts:
            database = root / "app.sqlite"
            env = self.env_for(root)
            started = time.perf_counter()
            run_checked(Cmd("setup", python(SM_NOOP, database, location), env, str(base)))
            note(f"setup: {label}: applied {source.count} in {time.perf_counter() - started:.1f} s")
            cmds.append(Cmd(label, python(SM_NOOP, database, location), env, str(base)))
        results = measure(cmds, self.rounds, self.budget, warmup=2)
        modules = {}
        for cmd in cmds:
            argv = python(SM_MODULES, *cmd.argv[3:])
            modules[cmd.label] = f"selfmigrate modules loaded: {run(argv, cmd.env, cmd.cwd).stdout.strip()}"
        medians = self.table(
            f"[7 namespace] no-op start at {source.count}, migrations folder without __init__.py",
            results,
            cmds[0].label,
            extra=modules,
        )
        for cmd in cmds[1:3]:
            self.goal(
                f"{cmd.label}: no-op <= 1.2x the package case (fast path)",
                medians[cmd.label] / medians[cmds[0].label],
                1.2,
            )

    def case_rss(self) -> None:
        """8. Peak RSS of a no-op start against the stdlib runner's."""
        for count in self.args.sizes:
            p = self.project(count)
            p.ensure_sm()
            cmds = [
                Cmd("selfmigrate.migrate() no-op", python(with_rss(SM_NOOP), p.sm_db, SPEC), p.env, str(p.root)),
                Cmd("stdlib runner", python(with_rss(STD_NOOP), p.sm_db, p.folder), p.env, str(p.root)),
                Cmd("python -c pass (interpreter start)", python(with_rss("pass")), p.env, str(p.root)),
            ]
            results = measure(cmds, min(self.rounds, 5), self.budget, warmup=1)
            medians = self.table(
                f"[8 rss] peak RSS of a no-op start, {count} applied", results, "stdlib runner", metric="rss"
            )
            if count == 10000:
                self.goal(
                    "peak RSS of a no-op start at 10000 <= 1.2x stdlib runner",
                    medians[cmds[0].label] / medians["stdlib runner"],
                    1.2,
                )

    def case_message(self) -> None:
        """9. The length of a failing migration's message when migration 1 of N fails."""
        print("\n[9 message] migration 1 fails on a fresh database (the rest are not attempted)")
        print(f"  {'N':>6} {'exception':18} {'bytes':>8} {'lines':>6} {'ms':>8} {'CLI stderr bytes':>17}")
        sizes = sorted({6, int(self.args.fail_size)})
        value = None
        for count in sizes:
            root = self.root / f"fail{count}"
            shutil.rmtree(root, ignore_errors=True)
            (root / "failapp").mkdir(parents=True)
            (root / "failapp" / "__init__.py").write_text("")
            write_migrations(root / "failapp" / "migrations", count, fail_first=True)
            env = self.env_for(root)
            (root / "lib").mkdir()
            (root / "cli").mkdir()
            lib = run(python(SM_FAIL, root / "lib" / "app.sqlite", "failapp.migrations"), env, str(root))
            cli = run(
                [
                    sys.executable,
                    "-m",
                    "selfmigrate",
                    "-d",
                    str(root / "cli" / "app.sqlite"),
                    "-m",
                    "failapp.migrations",
                    "apply",
                ],
                env,
                str(root),
            )
            try:
                found = json.loads(lib.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                found = {"type": f"exit {lib.rc}", "bytes": None}
            size = found.get("bytes")
            print(
                f"  {count:6d} {str(found.get('type')):18} {size if size is not None else 'n/a':>8} "
                f"{found.get('lines', ''):>6} {found.get('ms', 0.0):8.1f} {len(cli.stderr.encode()):17d}"
            )
            self.rows.append(
                {
                    "table": "message",
                    "label": f"N={count}",
                    "metric": "bytes",
                    "median": size,
                    "cli_stderr_bytes": len(cli.stderr.encode()),
                }
            )
            if count == int(self.args.fail_size):
                value = float(size) if size is not None else None
                if found.get("text"):
                    head = str(found["text"])[:400].replace("\n", "\n    ")
                    print(f"  the message at N = {count} begins:\n    {head}")
        self.goal(f"failing migration's message at N = {self.args.fail_size} <= 2048 bytes", value, 2048, unit="bytes")


def note(text: str) -> None:
    print(f"  ({text})", flush=True)


def parse_sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def parse_cases(text: str) -> list[str]:
    chosen = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name = CASES[int(part) - 1] if part.isdigit() and 1 <= int(part) <= len(CASES) else part
        if name not in CASES:
            raise argparse.ArgumentTypeError(f"unknown case {part!r}; the cases are {', '.join(CASES)} (or 1-9)")
        chosen.append(name)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Cases: " + ", ".join(f"{i} {name}" for i, name in enumerate(CASES, 1)),
    )
    parser.add_argument(
        "--only",
        type=parse_cases,
        default=list(CASES),
        metavar="CASE[,CASE]",
        help="run only these cases, by name or number (default: all)",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        metavar="N[,N]",
        help="applied counts for noop, deploy, pending and rss (default 1000,10000; quick 1000)",
    )
    parser.add_argument(
        "--apply-sizes",
        type=parse_sizes,
        metavar="N[,N]",
        help="migration counts for the fresh apply (default 1,100,1000,2000,4000,10000; quick 1,100,1000)",
    )
    parser.add_argument("--at", type=int, default=1000, help="migrations for status, flask, namespace (default 1000)")
    parser.add_argument("--fail-size", type=int, default=6000, help="migrations for the message case (default 6000)")
    parser.add_argument("--repeat", type=int, help="rounds of each comparison (default 11; quick 5)")
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds a comparison may take; slower ones run fewer rounds, at least 1 (default 60; quick 20)",
    )
    parser.add_argument(
        "--lock-cap",
        type=float,
        default=15.0,
        help="seconds after which a start waiting for a held lock is killed (default 15)",
    )
    parser.add_argument(
        "--tmpdir",
        help="where the projects and databases go (default: the system's temporary folder); a tmpfs such as"
        " /dev/shm takes the disk's syncs out of the figures, leaving the CPU cost",
    )
    parser.add_argument("--quick", action="store_true", help="smaller defaults, for a run of about 2 minutes")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal of issue 10 is missed")
    parser.add_argument("--json", metavar="FILE", help="also write every figure and goal to FILE")
    args = parser.parse_args()
    defaults = (
        {"sizes": [1000], "apply_sizes": [1, 100, 1000], "repeat": 5, "budget": 20.0}
        if args.quick
        else {"sizes": [1000, 10000], "apply_sizes": [1, 100, 1000, 2000, 4000, 10000], "repeat": 11, "budget": 60.0}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    print(
        f"Python {sys.version.split()[0]} on {sys.platform}, {os.cpu_count()} CPUs, load {load()},"
        f" files in {args.tmpdir or tempfile.gettempdir()}"
    )
    print(
        f"Cases: {', '.join(args.only)}; repeat {args.repeat}, budget {args.budget:g} s per comparison; "
        f"medians of fresh processes, ratio = median / the stdlib baseline's median",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="selfmigrate-scale-", dir=args.tmpdir) as tmp:
        bench = Bench(args, Path(tmp))
        for name in RUN_ORDER:
            if name in args.only:
                getattr(bench, f"case_{name}")()
                sys.stdout.flush()

    print(f"\nGoals of issue 10 (load now {load()}, {time.perf_counter() - started:.0f} s in all):")
    missed = [g for g in bench.goals if g["state"] == "MISSED"]
    for g in bench.goals:
        value = g["value"]
        shown = "" if value is None else (f"{value:.2f}x" if g["unit"] == "x" else f"{value:.1f} {g['unit']}")
        print(f"  {str(g['state']):12} {g['goal']}  {shown}")
    print(f"\nRerun: .venv/bin/python benchmarks/scale.py {' '.join(sys.argv[1:])}".rstrip())
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"args": {k: v for k, v in vars(args).items()}, "rows": bench.rows, "goals": bench.goals},
                indent=2,
                default=str,
            )
        )
    return 1 if args.check and missed else 0


def load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
