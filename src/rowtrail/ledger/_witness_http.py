r"""The witness protocol over HTTP (C2SP ``tlog-witness``): a stdlib server and its client.

Server (:class:`WitnessServer`, a ``ThreadingHTTPServer`` around a
:class:`~rowtrail.ledger.Witness`):

* ``POST <prefix>/add-checkpoint`` — body: ``old <size>``, proof lines, a blank line, the
  checkpoint note. 200 with the cosignature line(s); 400 malformed, 403 bad log signature,
  404 unknown log, 409 with body ``<size>\n`` and ``Content-Type: text/x.tlog.size``, 422
  inconsistent, 413 too large;
* ``GET <prefix>/<sha256(origin) hex>/checkpoint`` — the latest cosigned checkpoint (the log's
  and the witness's signature lines), or 404.

Connections are HTTP/1.1 keep-alive. The client (:class:`WitnessClient`) keeps one connection
open, maps every refusal to :class:`~rowtrail.errors.WitnessError` with the status (and, for
409, the witness's size), and is trusted under the cosignature key it is *configured* with.
"""

from __future__ import annotations

import http.client
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rowtrail.errors import InvalidInputError, RowtrailError, WitnessError
from rowtrail.ledger._cosignature import CosignatureVerifier
from rowtrail.ledger._witness import (
    _MAX_REQUEST,
    Witness,
    format_add_checkpoint,
    origin_hash,
)

__all__ = ["SIZE_CONTENT_TYPE", "WitnessClient", "WitnessServer"]

#: Content type of a 409 answer: the witness's latest cosigned size.
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every kept-alive answer.
    disable_nagle_algorithm = True
    server: WitnessServer

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            sys.stderr.write(f"witness {self.address_string()} {format % args}\n")

    def _reply(
        self, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != self.server.prefix + "/add-checkpoint":
            self._reply(404, f"no such endpoint {self.path!r}\n")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._reply(411, "Content-Length is required\n")
            return
        if not 0 <= length <= _MAX_REQUEST:
            self.close_connection = True
            self._reply(413, f"request bodies are at most {_MAX_REQUEST} bytes\n")
            return
        body = self.rfile.read(length)
        try:
            answer = self.server.witness.handle(body)
        except WitnessError as exc:
            status = exc.status or 500
            if status == 409:
                self._reply(409, f"{exc.size}\n", SIZE_CONTENT_TYPE)
            else:
                self._reply(status, f"{exc}\n")
            return
        except (RowtrailError, OSError) as exc:  # e.g. the state could not be written: no cosig
            sys.stderr.write(f"witness error: {exc!r}\n")
            self._reply(500, "the witness could not store its state; nothing was cosigned\n")
            return
        self._reply(200, answer)

    def do_GET(self) -> None:
        prefix = self.server.prefix + "/"
        parts = self.path[len(prefix) :].split("/") if self.path.startswith(prefix) else []
        if len(parts) == 2 and parts[1] == "checkpoint":
            for origin in self.server.witness.origins:
                if origin_hash(origin) == parts[0]:
                    note = self.server.witness.latest(origin)
                    if note is not None:
                        self._reply(200, note)
                        return
        self._reply(404, "no checkpoint cosigned for that log\n")


class WitnessServer(ThreadingHTTPServer):
    r"""Serve a witness over HTTP (``serve_forever()``; ``server_address`` has the port).

    Examples
    --------
    >>> import tempfile, threading
    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> from rowtrail.ledger import NoteSigner, Witness, format_checkpoint_body, EMPTY_ROOT
    >>> log = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
    >>> witness = Witness.open("w.example/1", {log.name: [log.verifier]},
    ...                        state_dir=tempfile.mkdtemp())
    >>> server = WitnessServer(witness, ("127.0.0.1", 0))
    >>> thread = threading.Thread(target=server.serve_forever, daemon=True); thread.start()
    >>> client = WitnessClient(server.url, witness.verifier)
    >>> note = log.sign(format_checkpoint_body(log.name, 0, EMPTY_ROOT))
    >>> client.add_checkpoint(0, [], note).startswith("\u2014 w.example/1 ")
    True
    >>> client.close(); server.shutdown(); server.server_close()
    """

    daemon_threads = True

    def __init__(
        self,
        witness: Witness,
        address: tuple[str, int] = ("127.0.0.1", 0),
        *,
        prefix: str = "",
        verbose: bool = False,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise InvalidInputError(
                f"prefix of WitnessServer must be '' or start but not end with '/'; got {prefix!r}"
            )
        self.witness = witness
        self.prefix = prefix
        self.verbose = verbose
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The base URL clients submit to (``http://host:port<prefix>``)."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"


class WitnessClient:
    """Submit checkpoints to a witness over HTTP; trusted under a configured key.

    Threads may share it: requests go one at a time over one keep-alive connection.

    Parameters
    ----------
    url : str
        The witness's submission prefix, e.g. ``http://127.0.0.1:8080``.
    verifier : CosignatureVerifier or str
        The witness's cosignature key (or its vkey text), known out of band.
    timeout : float
        Seconds to wait for a connection or an answer.
    """

    def __init__(
        self, url: str, verifier: CosignatureVerifier | str, *, timeout: float = 10.0
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidInputError(
                f"url of WitnessClient must be an http(s) URL; got {url!r}"
            )
        self.url = url.rstrip("/")
        self._parsed = parsed
        self.verifier = (
            CosignatureVerifier.from_vkey(verifier) if isinstance(verifier, str) else verifier
        )
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self.verifier.name

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            cls = (
                http.client.HTTPSConnection
                if self._parsed.scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = cls(
                self._parsed.hostname or "", self._parsed.port, timeout=self.timeout
            )
        return self._connection

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, str, str]:
        target = self._parsed.path.rstrip("/") + path
        headers = {"Content-Type": "text/plain; charset=utf-8"} if body is not None else {}
        with self._lock:
            for attempt in range(2):
                connection = self._connect()
                try:
                    connection.request(method, target, body=body, headers=headers)
                    response = connection.getresponse()
                    text = response.read().decode("utf-8", "replace")
                    kind = response.getheader("Content-Type", "")
                    if response.will_close:
                        self._close()
                    return response.status, kind, text
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self._close()  # a kept-alive connection the server closed: retry once
                    if attempt:
                        raise WitnessError(
                            f"witness {self.name!r} at {self.url} closed the connection"
                        ) from None
                except (OSError, http.client.HTTPException) as exc:
                    self._close()
                    raise WitnessError(
                        f"witness {self.name!r} at {self.url} is unreachable: {exc}"
                    ) from exc
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> str:
        """POST ``add-checkpoint``; return the response body (the cosignature lines).

        Raises :class:`~rowtrail.errors.WitnessError` with the HTTP status on a refusal (and
        the witness's size on 409), or with no status when the witness is unreachable. The
        lines are not verified here (see :func:`~rowtrail.ledger.collect_cosignatures`).
        """
        status, kind, text = self._request(
            "POST", "/add-checkpoint", format_add_checkpoint(old_size, proof, note)
        )
        if status == 200:
            return text
        if status == 409:
            size_text = text.strip()
            if not kind.startswith(SIZE_CONTENT_TYPE) or not size_text.isdigit():
                raise WitnessError(
                    f"witness {self.name!r} answered 409 without its size: {text!r:.80}", status=409
                )
            raise WitnessError(
                f"witness {self.name!r} last cosigned size {size_text}, not {old_size}",
                status=409,
                size=int(size_text),
            )
        raise WitnessError(
            f"witness {self.name!r} refused the checkpoint ({status}): {text.strip()}",
            status=status,
        )

    def latest(self, origin: str) -> str | None:
        """GET the latest checkpoint the witness cosigned for ``origin`` (``None`` on 404)."""
        status, _, text = self._request("GET", f"/{origin_hash(origin)}/checkpoint", None)
        if status == 404:
            return None
        if status != 200:
            raise WitnessError(
                f"witness {self.name!r} answered {status}: {text!r:.80}", status=status
            )
        return text

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Close the kept-alive connection."""
        with self._lock:
            self._close()

    def __enter__(self) -> WitnessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
