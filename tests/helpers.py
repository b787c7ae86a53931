"""Small helpers the test modules share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest


@contextlib.contextmanager
def connected(path: str | Path) -> t.Iterator[sqlite3.Connection]:
    """A connection that commits on success, rolls back on error, and is closed.

    ``with sqlite3.connect(...)`` only commits; the connection stays open until
    garbage collection, which Python 3.13 reports as a ResourceWarning.
    """
    conn = sqlite3.connect(path)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def dump(path: Path) -> list[str]:
    """The whole database as SQL statements, schema and rows: equal dumps, equal data."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


NOBODY = 65534


def as_other_user(args: list[str], **kwargs: t.Any) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as a user that file permissions apply to, and return what it did.

    Root reads every file whatever its mode, so as root the command runs under
    ``setpriv`` with every capability dropped (no CAP_DAC_OVERRIDE, no
    CAP_DAC_READ_SEARCH): still uid 0, so it can run an interpreter installed
    under root's home (pyenv's shared libpython is there, out of ``nobody``'s
    reach), but file modes apply to it. As anyone else it runs as that user.
    Paths it uses must be reachable by such a user: see :func:`shared_folder`.
    """
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv to drop root's rights")
        args = [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", *args]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **kwargs)


@contextlib.contextmanager
def shared_folder() -> t.Iterator[Path]:
    """A fresh folder that :func:`as_other_user` can reach and write (pytest's
    ``tmp_path`` is under a folder only its owner may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="selfmigrate-shared-"))
    try:
        folder.chmod(0o777)
        if os.geteuid() == 0:
            os.chown(folder, NOBODY, NOBODY)
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder)
