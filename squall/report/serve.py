"""A tiny web page over the store: every run, newest first, coloured by verdict.

``serve(store_dir, port)`` binds 127.0.0.1 only (the results may describe
bugs; nothing here is meant for the network). ``/`` lists the runs; every
other path serves files under the store, so each row links to its
``report.html`` and the rest of the run directory.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from squall.report.run_page import REPORT_HTML, VERDICT_COLOURS

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One run directory as the index shows it."""

    path: str  # relative to the store, with "/" separators
    name: str
    valid: Any  # True, False, "unknown"
    mtime: float
    has_report: bool


def list_runs(store_dir: str | os.PathLike[str]) -> list[RunEntry]:
    """Run directories (those holding test.yaml or results.json), newest first.

    A run is any directory with test.yaml or results.json, however deep, so
    ``store/<test>/<timestamp>/`` and flatter layouts both show. ``latest``
    symlinks are skipped so a run is listed once.
    """
    store = Path(store_dir)
    runs = []
    for dirpath, dirnames, filenames in os.walk(store):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
        if "test.yaml" not in filenames and "results.json" not in filenames:
            continue
        valid: Any = "unknown"
        if "results.json" in filenames:
            try:
                valid = json.loads((here / "results.json").read_text()).get("valid", "unknown")
            except (OSError, ValueError):
                valid = "unknown"
        marker = here / ("results.json" if "results.json" in filenames else "test.yaml")
        rel = here.relative_to(store).as_posix()
        runs.append(RunEntry(rel, rel, valid, marker.stat().st_mtime, REPORT_HTML in filenames))
    # Timestamped directory names sort with time too; mtime breaks ties between tests.
    return sorted(runs, key=lambda r: (r.mtime, r.path), reverse=True)


def list_matrices(store_dir: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Proof-matrix pages (``matrix/<time>.html``, see squall.matrix), newest first,
    each with its one-line outcome."""
    out = []
    for page in sorted((Path(store_dir) / "matrix").glob("*.html"), reverse=True):
        try:
            summary = json.loads(page.with_suffix(".json").read_text())
            line = f"{summary['passed']} of {summary['cases']} cases as expected"
        except (OSError, ValueError, KeyError):
            line = "summary unreadable"
        out.append((f"matrix/{page.name}", f"{page.stem}: {line}"))
    return out


def index_html(runs: list[RunEntry], matrices: list[tuple[str, str]] | None = None) -> str:
    rows = []
    for r in runs:
        colour = VERDICT_COLOURS.get(r.valid if isinstance(r.valid, bool) else "unknown")
        word = (
            {True: "valid", False: "invalid"}.get(r.valid, "unknown")
            if isinstance(r.valid, bool)
            else "unknown"
        )
        href = html.escape(f"{r.path}/{REPORT_HTML}" if r.has_report else f"{r.path}/")
        rows.append(
            f"<tr><td><span style='background:{colour};color:#fff;padding:1px 8px;"
            f"border-radius:4px'>{word}</span></td><td><a href='{href}'>"
            f"{html.escape(r.name)}</a></td></tr>"
        )
    body = "".join(rows) or "<tr><td colspan=2>No runs yet.</td></tr>"
    proofs = "".join(
        f"<li><a href='{html.escape(href)}'>{html.escape(text)}</a></li>"
        for href, text in matrices or []
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>squall runs</title>"
        "<style>body{font:15px system-ui,sans-serif;margin:24px}td{padding:3px 10px}"
        "</style></head><body>"
        + (f"<h1>Proof matrix</h1><ul>{proofs}</ul>" if proofs else "")
        + "<h1>Squall runs</h1><table>"
        + body
        + "</table></body></html>"
    )


class _Handler(SimpleHTTPRequestHandler):
    def _inside_store(self) -> bool:
        """Whether the path asked for, links followed, is the store or under it: a link
        in a run directory to /etc must not serve /etc/passwd."""
        try:
            real = Path(self.translate_path(self.path)).resolve()
        except (ValueError, OSError):  # a NUL byte, a loop of links
            return False
        root = Path(str(self.directory)).resolve()
        return real == root or root in real.parents

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
        if not self._inside_store():
            self.send_error(404, "not in the store")
            return
        super().do_HEAD()

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path not in ("/", "/index.html") and not self._inside_store():
            self.send_error(404, "not in the store")
            return
        if self.path in ("/", "/index.html"):
            body = index_html(list_runs(self.directory), list_matrices(self.directory)).encode(
                "utf-8"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - inherited name
        pass  # a quiet server; the runs themselves are the log


def make_server(store_dir: str | os.PathLike[str], port: int = 8080) -> ThreadingHTTPServer:
    """A server over ``store_dir`` on 127.0.0.1:``port`` (0 picks a free port), not yet serving."""
    store = Path(store_dir)
    if not store.is_dir():
        raise FileNotFoundError(
            f"store directory {store} does not exist; run a test first "
            "or pass the directory runs are written to"
        )
    if isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port {port} is not a TCP port; give --port 1..65535 (0: any free one)")
    try:
        return ThreadingHTTPServer((HOST, port), partial(_Handler, directory=str(store)))
    except OSError as exc:
        raise ValueError(
            f"cannot serve on {HOST}:{port}: {exc.strerror}; give another --port"
        ) from None


def serve(store_dir: str | os.PathLike[str], port: int = 8080) -> None:
    """Serves the run index until interrupted (Ctrl-C)."""
    server = make_server(store_dir, port)
    print(f"serving {store_dir} at http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
