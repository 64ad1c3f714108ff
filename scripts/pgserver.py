"""Start and stop a throwaway PostgreSQL server on loopback, for the tests and benchmarks.

As a module::

    from pgserver import PgServer          # scripts/ on sys.path, or load it by file path
    with PgServer() as server:
        url = server.url                    # postgresql://postgres@127.0.0.1:PORT/rowtrail

As a command (``scripts/test.sh`` uses it)::

    eval "$(python scripts/pgserver.py start)"   # exports ROWTRAIL_PG_URL and ROWTRAIL_PG_DIR
    python scripts/pgserver.py stop "$ROWTRAIL_PG_DIR"

The server binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, package
``postgresql``) or the ones on ``PATH``. The cluster lives in a new temporary directory, listens
on 127.0.0.1 on a free port with ``trust`` authentication (loopback only, throwaway data), and
is stopped and removed by :meth:`PgServer.stop`. PostgreSQL refuses to run as root: as root,
every server command runs as the ``postgres`` user (``runuser -u postgres --``), which owns
the directory.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PgServer", "find_bindir"]

DATABASE = "rowtrail"
SUPERUSER = "postgres"


def find_bindir() -> Path:
    """Return the directory of ``initdb``/``pg_ctl`` (the newest Debian version first)."""
    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on "
        "PATH). Install them: apt-get install -y postgresql"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """A throwaway PostgreSQL cluster in a temporary directory (a context manager).

    Parameters
    ----------
    durable : bool
        Keep ``fsync`` and ``synchronous_commit`` on (for benchmarks). Off by default: tests
        kill clients, never the server, and a throwaway cluster need not survive power loss.
    directory : path, optional
        Where to put the cluster (a new temporary directory by default).
    """

    def __init__(self, *, durable: bool = False, directory: str | os.PathLike[str] | None = None):
        self.durable = durable
        self.bindir = find_bindir()
        self.directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="rt-pg-"))
        self.port = 0
        self._as_postgres = os.geteuid() == 0

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.directory / "data"

    @property
    def url(self) -> str:
        """The URL of the database the server was started with."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(
                f"{shlex.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def start(self) -> PgServer:
        """Create the cluster, start the server, create the database; return ``self``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.directory, SUPERUSER, SUPERUSER)
        self.directory.chmod(0o700)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.directory),
            "max_connections": "400",
            "shared_buffers": "128MB",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        for attempt in range(5):
            self.port = _free_port()
            settings["port"] = str(self.port)
            options = " ".join(f"-c {k}={v}" for k, v in settings.items())
            try:
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                    str(self.directory / "server.log"), "-o", options, "-w", "-t", "60", "start",
                )
                break
            except RuntimeError:
                if attempt == 4:
                    raise
                time.sleep(0.2)  # the port was taken meanwhile: try another
        self._run(
            str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
            SUPERUSER, DATABASE,
        )
        (self.directory / "url").write_text(self.url + "\n")
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        if self.data.exists():
            with contextlib.suppress(RuntimeError):  # not running
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
                )
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``start`` prints shell ``export`` lines; ``stop DIR`` stops and removes a cluster."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a server; print export lines for the shell")
    start.add_argument("--durable", action="store_true", help="keep fsync on")
    stop = sub.add_parser("stop", help="stop the server in DIR and remove DIR")
    stop.add_argument("directory")
    args = parser.parse_args(argv)
    if args.command == "start":
        server = PgServer(durable=args.durable)
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        print(f"export ROWTRAIL_PG_URL={shlex.quote(server.url)}")
        print(f"export ROWTRAIL_PG_DIR={shlex.quote(str(server.directory))}")
        return 0
    server = PgServer(directory=args.directory)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
