"""A small client for a real `streamlit run` server that speaks the browser's own protocol.

The browser talks to the server over one websocket, ``ws://HOST:PORT/_stcore/stream``, with
protobuf messages from the installed Streamlit (``streamlit.proto``):

* the client sends a ``BackMsg`` whose ``rerun_script`` is a ``ClientState`` (the page's query
  string, page name and widget states); on a new connection this is what starts the first run,
  exactly as the frontend does once its websocket is open;
* the server answers with ``ForwardMsg``s: ``new_session`` when a run starts, one ``delta`` per
  element or block (``metadata.delta_path`` says where it goes on the page), and
  ``script_finished`` when the run ends.

The client sends no ``cached_message_hashes``, so the server never replaces an element by a
reference to the browser's message cache (``ref_hash``): every element arrives in full.
:func:`open_page` collects the elements of one complete run, keyed by their delta path (a later
delta at the same path replaces the earlier one, as in the browser), and returns them as a
:class:`Page`. :func:`serve` starts one ``streamlit run app/main.py`` server for tests and
benchmarks. Used by tests/test_concurrency.py and bench/load.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import websocket  # websocket-client
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "main.py"

# A run ends with one of these; FINISHED_EARLY_FOR_RERUN (st.rerun) is followed by another run.
XSRF_COOKIE = "_streamlit_xsrf"
_FINAL = {ForwardMsg.FINISHED_SUCCESSFULLY: "success", ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile error"}


class ServerError(RuntimeError):
    """The server did not start, or broke the protocol."""


@dataclass
class Element:
    path: tuple[int, ...]
    kind: str            # the Element oneof: "markdown", "metric", "alert", "imgs", ...
    text: str            # what a reader sees of it ("" for widgets and charts)
    proto: object


@dataclass
class Page:
    """One complete script run as the browser would draw it."""

    status: str                              # "success" or "compile error"
    seconds: float                           # from opening the websocket to script_finished
    elements: list[Element]                  # in page order (sorted by delta path)
    messages: int = 0                        # ForwardMsgs received
    compile_error: str | None = None
    session_id: str = ""
    query_string: str = ""                   # the page's query string after the run (st.query_params)
    sent: list[Element] = field(default_factory=list)   # every element the run sent, in order, replaced or not

    @property
    def text(self) -> str:
        return "\n".join(e.text for e in self.elements if e.text)

    @property
    def metrics(self) -> dict[str, str]:
        return {e.proto.label: e.proto.body for e in self.elements if e.kind == "metric"}

    def alerts(self, kind: str | None = None) -> list[str]:
        """Bodies of st.error / st.warning / st.info / st.success (``kind`` is one of those words)."""
        return [e.proto.body for e in self.elements if e.kind == "alert"
                and (kind is None or _ALERT_FORMATS.get(e.proto.format) == kind)]

    @property
    def exceptions(self) -> list[str]:
        return [e.text for e in self.elements if e.kind == "exception"]


def _alert_formats() -> dict[int, str]:
    from streamlit.proto.Alert_pb2 import Alert
    return {Alert.ERROR: "error", Alert.WARNING: "warning", Alert.INFO: "info", Alert.SUCCESS: "success"}


_ALERT_FORMATS = _alert_formats()


def element_text(element) -> tuple[str, str]:
    """(kind, readable text) of a streamlit.proto Element."""
    kind = element.WhichOneof("type")
    inner = getattr(element, kind)
    if kind in ("markdown", "heading", "text", "alert"):
        return kind, inner.body
    if kind == "metric":
        return kind, f"{inner.label}: {inner.body}"
    if kind == "exception":
        return kind, f"{inner.type}: {inner.message}"
    if kind == "imgs":
        return kind, "\n".join(i.caption for i in inner.imgs if i.caption)
    if kind == "code":
        return kind, inner.code_text
    return kind, ""


def open_page(url: str, query: str = "", page: str = "", timeout: float = 120.0) -> Page:
    """Open a new session on ``url`` (http://host:port), run the page once, return what it drew.

    ``query`` is the URL's query string without "?" (e.g. "image=cat_0003"); ``page`` the
    page's URL path name ("" for the default page). Raises TimeoutError when the run does not
    finish within ``timeout`` seconds and ServerError on anything the protocol does not allow.
    """
    start = time.perf_counter()
    with Session(url, timeout) as session:
        result = session.run(query=query, page=page, timeout=timeout - (time.perf_counter() - start))
    result.seconds = time.perf_counter() - start
    return result


class Session:
    """One browser tab's session, kept open: script runs with widget values, and uploads.

    A widget's value is sent as the browser sends it, a ``WidgetState`` keyed by the widget's id
    (the ``id`` of its element in an earlier :class:`Page`); every run sends all the values given
    so far, as the browser does. :meth:`upload` asks for an upload URL over the websocket
    (``file_urls_request``) and PUTs the file there with the server's XSRF cookie as its header,
    as the file uploader does; the returned ``UploadedFileInfo`` goes into a later run's value
    of that uploader (:meth:`uploader_state`).
    """

    def __init__(self, url: str, timeout: float = 120.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.widgets: dict[str, object] = {}         # widget id -> WidgetState
        self.session_id = ""
        self._requests = 0
        self._xsrf: str | None = None
        ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/_stcore/stream"
        try:
            self.ws = websocket.create_connection(ws_url, timeout=timeout, subprotocols=["streamlit"])
        except (OSError, websocket.WebSocketException) as e:
            raise ServerError(f"cannot open {ws_url}: {e}") from e

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()

    def _receive(self, deadline: float, messages: int):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(f"no answer within {self.timeout} s ({messages} messages received)")
        self.ws.settimeout(remaining)
        try:
            data = self.ws.recv()
        except websocket.WebSocketTimeoutException as e:
            raise TimeoutError(f"no answer within {self.timeout} s ({messages} messages received)") from e
        except websocket.WebSocketConnectionClosedException as e:
            raise ServerError(f"the server closed the websocket after {messages} messages") from e
        if isinstance(data, str):
            raise ServerError(f"text frame from the server: {data[:200]!r}")
        msg = ForwardMsg.FromString(data)
        if msg.WhichOneof("type") == "ref_hash":
            raise ServerError("the server sent a cached-message reference that this client never asked for")
        return msg

    def set_widget(self, state) -> None:
        """Send ``state`` (a streamlit.proto WidgetState) with every later run."""
        self.widgets[state.id] = state

    def run(self, query: str = "", page: str = "", timeout: float | None = None) -> Page:
        """Run the page once with the widget values set so far; what it drew."""
        start = time.perf_counter()
        deadline = start + (timeout or self.timeout)
        request = BackMsg()
        request.rerun_script.query_string = query
        request.rerun_script.page_name = page
        for state in self.widgets.values():
            request.rerun_script.widget_states.widgets.append(state)
        self.ws.send_binary(request.SerializeToString())

        found: dict[tuple[int, ...], Element] = {}
        sent: list[Element] = []
        messages, compile_error, query_string = 0, None, query
        while True:
            msg = self._receive(deadline, messages)
            messages += 1
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                if msg.new_session.initialize.session_id:
                    self.session_id = msg.new_session.initialize.session_id
                found.clear()          # a full run redraws the page from the top
                sent.clear()
            elif kind == "page_info_changed":
                query_string = msg.page_info_changed.query_string
            elif kind == "delta":
                path = tuple(msg.metadata.delta_path)
                what = msg.delta.WhichOneof("type")
                # Whatever was at this path (and under it) is replaced.
                for p in [p for p in found if p[:len(path)] == path]:
                    del found[p]
                if what == "new_element":
                    el_kind, text = element_text(msg.delta.new_element)
                    found[path] = Element(path, el_kind, text, getattr(msg.delta.new_element, el_kind))
                    sent.append(found[path])
            elif kind == "session_event" and msg.session_event.WhichOneof("type") == "script_compilation_exception":
                e = msg.session_event.script_compilation_exception
                compile_error = f"{e.type}: {e.message}"
            elif kind == "script_finished" and msg.script_finished in _FINAL:
                return Page(status=_FINAL[msg.script_finished], seconds=time.perf_counter() - start,
                            elements=[found[p] for p in sorted(found)], messages=messages,
                            compile_error=compile_error, session_id=self.session_id, query_string=query_string,
                            sent=sent)

    def _xsrf_cookie(self) -> str | None:
        """The XSRF cookie the server sets with its health check (None when XSRF protection is off)."""
        if self._xsrf is None:
            with urllib.request.urlopen(self.url + "/_stcore/health", timeout=self.timeout) as r:
                for header in r.headers.get_all("Set-Cookie") or []:
                    name, _, rest = header.partition("=")
                    if name.strip() == XSRF_COOKIE:
                        self._xsrf = rest.split(";", 1)[0]
            self._xsrf = self._xsrf or ""
        return self._xsrf or None

    def upload(self, name: str, data: bytes, content_type: str = "application/octet-stream"):
        """Upload one file as the file uploader does; its ``UploadedFileInfo``."""
        from streamlit.proto.Common_pb2 import UploadedFileInfo

        if not self.session_id:
            raise ServerError("run the page once before uploading: the session has no id yet")
        self._requests += 1
        request = BackMsg()
        request.file_urls_request.request_id = str(self._requests)
        request.file_urls_request.session_id = self.session_id
        request.file_urls_request.file_names.append(name)
        self.ws.send_binary(request.SerializeToString())
        deadline, messages = time.perf_counter() + self.timeout, 0
        while True:
            msg = self._receive(deadline, messages)
            messages += 1
            if msg.WhichOneof("type") == "file_urls_response" and msg.file_urls_response.response_id == str(
                    self._requests):
                break
        if msg.file_urls_response.error_msg:
            raise ServerError(f"no upload URL for {name}: {msg.file_urls_response.error_msg}")
        urls = msg.file_urls_response.file_urls[0]
        boundary = f"----vitrm{os.urandom(8).hex()}"
        body = b"".join([f"--{boundary}\r\n".encode(),
                         f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode(),
                         f"Content-Type: {content_type}\r\n\r\n".encode(), data,
                         f"\r\n--{boundary}--\r\n".encode()])
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        cookie = self._xsrf_cookie()
        if cookie:
            headers.update({"X-Xsrftoken": cookie, "Cookie": f"{XSRF_COOKIE}={cookie}"})
        put = urllib.request.Request(self.url + urls.upload_url, data=body, headers=headers, method="PUT")
        try:
            with urllib.request.urlopen(put, timeout=self.timeout) as r:
                r.read()
        except urllib.error.HTTPError as e:
            raise ServerError(f"uploading {name}: HTTP {e.code} {e.reason}") from e
        return UploadedFileInfo(file_id=urls.file_id, name=name, size=len(data))

    @staticmethod
    def uploader_state(widget_id: str, files) -> object:
        """The WidgetState of a file uploader holding ``files`` (UploadedFileInfo, in upload order)."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState
        state = WidgetState(id=widget_id)
        state.file_uploader_state_value.uploaded_file_info.extend(files)
        return state

    @staticmethod
    def string_state(widget_id: str, value: str) -> object:
        """The WidgetState of a radio or select box showing ``value``."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState
        return WidgetState(id=widget_id, string_value=value)

    def idle(self, seconds: float) -> None:
        """Stay connected for ``seconds``, reading what the server sends (so its pings are answered)."""
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            self.ws.settimeout(min(left, 1.0))
            with contextlib.suppress(websocket.WebSocketTimeoutException):
                self.ws.recv()


# --------------------------------------------------------------------------- a server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def serve(log: Path, env: dict[str, str] | None = None, timeout: float = 60.0,
          app: Path = APP, cwd: Path = ROOT) -> Iterator[str]:
    """Run `streamlit run app/main.py` on a free local port; yields its http URL.

    The server's stdout and stderr go to ``log``. Raises ServerError, with the log's last
    lines, when it exits or does not answer /_stcore/health within ``timeout`` seconds. The
    server is stopped on exit (terminate, then kill after 10 s).
    """
    with serve_process(log, env, timeout, app, cwd) as (url, _):
        yield url


@contextlib.contextmanager
def serve_process(log: Path, env: dict[str, str] | None = None, timeout: float = 60.0,
                  app: Path = APP, cwd: Path = ROOT) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`serve`, yielding (URL, the server's process) for those who measure the process. ``cwd``: the
    repository whose ``app`` and ``vitrm`` the server imports (another checkout, to compare two builds)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=cwd, env=dict(os.environ, **(env or {})), stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise ServerError(f"streamlit exited with status {process.returncode} before answering; "
                                      f"its log ({log}):\n{_tail(log)}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerError(f"streamlit did not answer {url}/_stcore/health within {timeout} s; "
                                      f"its log ({log}):\n{_tail(log)}")
                time.sleep(0.05)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
