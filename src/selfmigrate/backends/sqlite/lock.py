"""The SQLite migration lock: an exclusive ``flock`` on a file beside the database.

Holds :class:`MigrationLock`, which serialises the migrations that run outside a
transaction. Must not know migrations or the tracker; only the file it guards.
"""

from __future__ import annotations

import fcntl
import os
import time

from ...errors import DatabaseError, LockTimeout

TYPE_CHECKING = False  # not typing's: see backends/base.py
if TYPE_CHECKING:
    from pathlib import Path

#: Appended to the database's file name to name its migration lock file.
LOCK_SUFFIX = "-selfmigrate.lock"


def lock_for(database: Path) -> MigrationLock:
    """The migration lock of ``database``: ``app.sqlite-selfmigrate.lock`` beside it.

    Held with :func:`fcntl.flock`, the kernel releases it when its process ends,
    however it ends, so it never goes stale the way a row in a table would.
    """
    from pathlib import Path  # a lock is taken only for a non-transactional migration

    return MigrationLock(Path(str(database) + LOCK_SUFFIX), database)


class MigrationLock:
    """An exclusive :func:`fcntl.flock` on a lock file beside the database.

    Held by one process (one open file) at a time; released by :meth:`release`,
    by leaving the ``with`` block, or by the kernel when the process dies.

    :param path: the lock file; created (empty) if missing.
    :param database: the database it guards, for messages.
    """

    def __init__(self, path: Path, database: Path) -> None:
        self.path = path
        self.database = database
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"MigrationLock({str(self.path)!r})"

    def describe(self) -> str:
        """The lock file, for messages."""
        return str(self.path)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` seconds for its holder to finish.

        :raises LockTimeout: another process held it for the whole wait.
        :raises DatabaseError: the lock file cannot be created (a read-only folder).
        """
        if self._fd is not None:
            return
        fd = self._open()
        started = time.monotonic()
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= timeout:
                    os.close(fd)
                    raise LockTimeout(
                        f"Timed out after {waited:.1f} s waiting for the migration lock {self.path}"
                        f" of database {self.database} (lock timeout {timeout:g} s). Another process"
                        " is running a migration outside a transaction; wait for it to finish, or"
                        " raise the lock timeout (SELFMIGRATE_LOCK_TIMEOUT)."
                    ) from None
                time.sleep(min(delay, max(timeout - waited, 0.001)))
                delay = min(delay * 2, 0.1)
                continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return

    def try_acquire(self) -> bool:
        """Take the lock if it is free, without waiting; return whether it was taken."""
        try:
            self.acquire(0)
        except LockTimeout:
            return False
        return True

    def held_elsewhere(self) -> bool:
        """Whether another process (or open file) holds the lock right now.

        Writes nothing: a missing lock file means nobody holds it. For
        read-only commands, which must tell a migration that is running from
        one whose process died.
        """
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return False
        except PermissionError as e:
            raise self._unreadable_error() from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also releases the lock if it was taken
        return False

    def release(self) -> None:
        """Release the lock (closing the file releases it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> MigrationLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _open(self) -> int:
        # The lock file gets the database's permission bits (never world-writable),
        # so every user that may migrate the database may take the lock.
        try:
            owner: os.stat_result | None = self.database.stat()
        except OSError:
            owner = None
        mode = (owner.st_mode & 0o660 or 0o600) if owner is not None else 0o600
        try:
            # Read-only is enough for flock, and lets a user who may only read the
            # lock file (group bits r--) wait for it too.
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), mode)
        except PermissionError as e:
            if not os.path.exists(self.path):
                raise self._folder_error(e) from e
            raise self._unreadable_error() from e
        except OSError as e:
            raise self._folder_error(e) from e
        if owner is not None:
            give_to_owner(fd, owner)
        return fd

    def _unreadable_error(self) -> DatabaseError:
        found = os.stat(self.path)
        return DatabaseError(
            f"Cannot open the migration lock file {self.path} of database {self.database}: it is"
            f" uid {found.st_uid}'s, mode {found.st_mode & 0o777:o}, and this process (uid"
            f" {os.geteuid()}) may not read it (root made it?). It holds no data: delete it, or chown"
            " it to the database's owner."
        )

    def _folder_error(self, e: OSError) -> DatabaseError:
        return DatabaseError(
            f"Cannot open the migration lock file {self.path} of database {self.database}: {e}."
            " The database's folder must be writable by the app (SQLite needs that too, for"
            " its journal)."
        )


def give_to_owner(fd: int, owner: os.stat_result) -> None:
    """Give the file open as ``fd`` to ``owner``'s user and group, when root made it.

    Root (an operator's ``docker exec``, a root health check) on the volume of an app
    that runs as another user: a file it leaves beside the database (the lock file,
    a snapshot) would be root's, and the app could not open or read it. SQLite does
    the same for the journal files root creates. Does nothing for another user, for
    a database root owns, or a file that already has its owner.
    """
    if os.geteuid() != 0 or owner.st_uid == 0:
        return
    if os.fstat(fd).st_uid != owner.st_uid:
        os.fchown(fd, owner.st_uid, owner.st_gid)
