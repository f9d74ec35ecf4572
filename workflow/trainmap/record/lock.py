"""One live writer per seed folder: the Recorder's lock file.

Two processes recording the same ``<directory>/seed<seed>`` would each rewrite the whole
``metrics.parquet`` with their own rows (the last writer wins, silently). The first
Recorder creates ``<directory>/seed<seed>/recorder.lock`` atomically (a hard link, which
fails where the file exists) with its pid, host name, a token of its own and the time; a
second one is refused while that process lives. A lock whose process is gone (same host,
pid not running) is stale: it is taken over with a warning. A lock from another host
cannot be checked from here: the error says which host and how to remove it by hand. A
lock held by the same process (a Recorder never closed, e.g. a notebook cell run again)
is taken over with a warning; the older Recorder then finds the token changed at its next
write and stops with an error.
"""

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from trainmap.errors import RecordError
from trainmap.io.atomic import atomic_path

log = logging.getLogger(__name__)

LOCK_FILE = "recorder.lock"


def _alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read(path: Path) -> dict | None:
    """The holder's record, None if the file vanished; an unreadable one is ``{}``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


@dataclass
class SeedLock:
    """The lock of one seed folder held by this Recorder (``acquire``, ``check``,
    ``release``)."""

    path: Path
    token: str

    @classmethod
    def acquire(cls, folder: Path) -> "SeedLock":
        """Take ``folder``'s lock, or raise RecordError naming the live holder."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_FILE
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": uuid.uuid4().hex,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        # The record is written whole under another name, then hard-linked into place:
        # link() fails if the lock exists, and a reader never sees a half-written record.
        staging = folder / f".{LOCK_FILE}.{me['token']}"
        with atomic_path(staging) as tmp:
            tmp.write_text(json.dumps(me))
        try:
            for _ in range(3):  # a holder may release between our two looks
                try:
                    os.link(staging, path)
                except FileExistsError:
                    holder = _read(path)
                    if holder is not None:
                        cls._take_over_or_refuse(path, holder, me)
                        path.unlink(missing_ok=True)
                    continue
                return cls(path, me["token"])
        finally:
            staging.unlink(missing_ok=True)
        raise RecordError(f"{path}: could not take the lock (another Recorder keeps taking it)")

    @staticmethod
    def _take_over_or_refuse(path: Path, holder: dict, me: dict) -> None:
        pid, host = holder.get("pid"), holder.get("host")
        since = holder.get("since", "?")
        if not isinstance(pid, int) or not host:
            log.warning("%s: unreadable lock file, taken over", path)
            return
        if host != me["host"]:
            raise RecordError(
                f"{path.parent}: another Recorder (pid {pid} on host {host}, since {since}) "
                "records this seed; two writers would overwrite each other's rows. Record "
                "into another directory or seed, or, if that process is gone, delete "
                f"{path}"
            )
        if pid == me["pid"]:
            log.warning(
                "%s: this process already has a Recorder for this seed (since %s, never "
                "closed); the new one takes over and the old one stops at its next write "
                "(use `with Recorder(...)` or close() it)",
                path.parent,
                since,
            )
            return
        if _alive(pid):
            raise RecordError(
                f"{path.parent}: another Recorder (pid {pid} on this host {host}, since "
                f"{since}) records this seed; two writers would overwrite each other's rows. "
                "Wait for it to finish, stop it, or record into another directory or seed"
            )
        log.warning(
            "%s: stale lock of pid %d (no longer running, since %s) taken over",
            path.parent,
            pid,
            since,
        )

    def check(self) -> None:
        """Before a write: the lock is still ours (else RecordError)."""
        holder = _read(self.path)
        if holder is None or holder.get("token") != self.token:
            who = (
                "removed"
                if holder is None
                else (f"taken by pid {holder.get('pid')} on {holder.get('host')}")
            )
            raise RecordError(
                f"{self.path.parent}: this Recorder's lock was {who}; it stops writing so "
                "as not to overwrite the other writer's rows"
            )

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        holder = _read(self.path)
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)
