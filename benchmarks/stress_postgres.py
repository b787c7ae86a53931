"""PostgreSQL stress: 16 processes at once, behind a slow migration, through pgbouncer; SIGKILL trials.

Run it from the project root against a server (default postgresql://postgres@127.0.0.1:5432/postgres,
or SELFMIGRATE_TEST_POSTGRES)::

    .venv/bin/python benchmarks/stress_postgres.py                  # 20 rounds of each, 200 kills
    .venv/bin/python benchmarks/stress_postgres.py --rounds 3 --kills 20

Each round starts 16 processes released at the same instant on a fresh database with 20
migrations and checks from the data (tests/postgres/pgharness.py) that every migration ran
exactly once, in order, and that no process failed: plain; with half of the processes
started while a slow migration holds the lock; through a pgbouncer in transaction pooling
mode (started here, if /usr/sbin/pgbouncer exists). Each kill trial SIGKILLs one migrating
process after a random delay and checks that the database is at a migration boundary and
that the next start completes — or, when the kill caught the non-transactional migration,
that the next start reports it instead of running it again. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "postgres"))

from pgharness import apply_duration, exactly_once, fresh_database, kill_trial, outcomes, start, write_migrations  # noqa: E402

PROCESSES = 16
COUNT = 20


def _round(server: str, folder: Path, *, slow: bool, port: int | None) -> float:
    with fresh_database(server) as url:
        target = url if port is None else url.replace(":5432/", f":{port}/")
        started = time.perf_counter()
        first = start(target, folder, PROCESSES // 2 if slow else PROCESSES, time.time() + 1.0)
        rest: list[subprocess.Popen[str]] = []
        if slow:
            time.sleep(1.5)  # the slow migration (version 10, 1 s) is running by then, or done: both count
            rest = start(target, folder, PROCESSES // 2, 0.0)
        exactly_once(outcomes(first + rest), url, COUNT)
        return time.perf_counter() - started


def _pgbouncer(server: str, folder: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    folder.mkdir(exist_ok=True)
    folder.chmod(0o777)
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = trust\n"
        f"auth_file = {folder / 'users.txt'}\npool_mode = transaction\nmax_client_conn = 200\n"
        "default_pool_size = 20\nignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    for path in folder.iterdir():
        path.chmod(0o666)
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.terminate()
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=t.cast(str, __doc__).split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of each kind (default 20)")
    parser.add_argument("--kills", type=int, default=200, help="SIGKILL trials (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one)")
    args = parser.parse_args()
    server = os.environ.get("SELFMIGRATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain = write_migrations(root / "plain", COUNT)
        slow = write_migrations(root / "slow", COUNT, slow=10, sleep=1.0)
        killed = write_migrations(root / "kill", COUNT, no_transaction=True)
        bouncer = _pgbouncer(server, Path(tempfile.mkdtemp(prefix="selfmigrate-pgbouncer-")))
        kinds: list[tuple[str, Path, bool, int | None]] = [
            ("at once", plain, False, None),
            ("slow lock", slow, True, None),
        ]
        if bouncer is not None:
            kinds.append(("pgbouncer", plain, False, bouncer[1]))
        else:
            print("pgbouncer: not installed or did not start, skipped")
        try:
            for name, folder, is_slow, port in kinds:
                times, failed = [], 0
                for _ in range(args.rounds):
                    try:
                        times.append(_round(server, folder, slow=is_slow, port=port))
                    except AssertionError as e:
                        failed += 1
                        print(f"  {name}: FAILED {e}"[:2000])
                failures += failed
                spread = f"{min(times):.2f}-{max(times):.2f} s" if times else "-"
                print(
                    f"{name}: {args.rounds} rounds x {PROCESSES} processes x {COUNT} migrations,"
                    f" {failed} failed ({spread})"
                )
        finally:
            if bouncer is not None:
                bouncer[0].terminate()
                bouncer[0].wait(10)
        rng = random.Random(seed)
        window = apply_duration(server, killed)
        print(f"one process applies the 20 migrations in {window:.2f} s: kills spread over that")
        boundaries: dict[int, int] = {}
        started = failed = 0
        for _ in range(args.kills):
            try:
                found = kill_trial(server, killed, COUNT, rng, window=window)
            except AssertionError as e:
                failed += 1
                print(f"  kill: FAILED {e}"[:2000])
                continue
            boundaries[found["applied_at_kill"]] = boundaries.get(found["applied_at_kill"], 0) + 1
            started += found["started"]
        failures += failed
        where = ", ".join(f"{k}:{n}" for k, n in sorted(boundaries.items()))
        print(
            f"SIGKILL: {args.kills} trials (seed {seed}), {failed} failed; killed inside the non-transactional"
            f" migration (reported by the next start): {started}; boundary:count {where}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
