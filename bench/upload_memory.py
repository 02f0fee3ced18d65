"""Bounded memory, measured: a real server while many sessions each upload more than their budget.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.upload_memory [--sessions 30] [--files 3] [--file-mb 19]
                                                             [--heavy 4] [--hold 15] [--ttl 20]

Starts one real `streamlit run app/main.py` server on 127.0.0.1 and opens ``--sessions`` sessions
at once with the browser's own protocol (testkit/streamlit_client.py). Each session opens the Explore
page, picks "Upload", and adds files to the uploader one at a time, as a visitor choosing files
does: ``--files`` BMP photographs of ``--file-mb`` MB of random pixels each (under Streamlit's 20 MB
per-file cap, together over the app's 40 MB per-session budget, so the oldest is dropped), every
file different so that each one is decoded and traced. The first ``--heavy`` sessions also upload a
small PNG of nearly ``vitrm.MAX_PIXELS`` pixels (the costliest decode the library allows), so
that more decodes than ``VITRM_MAX_DECODES`` want to run at once.

The server's resident memory (VmRSS of its process and any children, from /proc) is sampled every
0.2 s from before the first session until the end, and the kernel's high-water mark (VmHWM) is
read at the end. Reported: the idle baseline (the server after one warm-up session that loaded the
model and decoded an upload), the peak, the memory while every session still holds its uploads,
and the memory after the sessions have left and Streamlit has forgotten them (``--ttl`` seconds,
set through ``server.disconnectedSessionTTL``; the app's default is Streamlit's 120 s), next to
the ceiling the code promises:

    baseline + sessions x (budget + one file in flight) + decode cap x cost of one decode

* budget: ``app.inputs.UPLOAD_BUDGET_BYTES``, the uploads a session keeps (one copy: the session's
  list and Streamlit's upload store share the bytes);
* one file in flight: a file just uploaded is held whole before the script run that drops the
  oldest (Streamlit's per-file cap, ``server.maxUploadSize``);
* cost of one decode: ``vitrm.MAX_PIXELS`` x 3 bytes (the RGB image) x DECODE_COPIES, the
  full-size images a decode and its reduction to the model input and thumbnail hold at once (worst
  case: an image with transparency), all inside a decode slot (``vitrm.decode_slot``, at most
  ``VITRM_MAX_DECODES`` at once).

Loopback only; the server and the clients share this machine's CPUs.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import struct
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.load import FLAGSHIP, checkpoints_root
from testkit.streamlit_client import Session, serve_process

MB = 2**20
FILE_CAP = 20 * MB          # .streamlit/config.toml: server.maxUploadSize = 20
# What one decode near MAX_PIXELS may hold at once, in RGB images of its size (3 bytes a pixel). An RGB
# file costs about one (tests/test_images.py holds it under 1.6); the worst case is a file with an alpha
# channel, composited on white: the RGBA image, a white RGBA background, their composite (4 bytes a pixel
# each) and the RGB result, 15 bytes a pixel. The bench's large upload is RGB; a lone decode of it is
# printed next to the ceiling.
DECODE_COPIES = 5


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants (0 for a process that has gone)."""
    total = 0
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in open(f"/proc/{pid}/task/{task}/children").read().split():
                total += rss_bytes(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def high_water_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """RSS of a process tree every ``period`` seconds, with a label for the phase it was taken in."""

    def __init__(self, pid: int, period: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.phase = "start"
        self.samples: list[tuple[float, str, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.perf_counter(), self.phase, rss_bytes(self.pid)))
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def peak(self, phases: set[str] | None = None) -> int:
        return max((r for _, p, r in self.samples if phases is None or p in phases), default=0)


def bmp(seed: int, size_bytes: int) -> bytes:
    """A 24-bit BMP of random pixels, about ``size_bytes`` long (uncompressed, like a scanner's)."""
    side = int((size_bytes / 3) ** 0.5) // 4 * 4          # rows need no padding
    pixels = np.random.default_rng(seed).integers(0, 256, side * side * 3, dtype=np.uint8).tobytes()
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def heavy_png(pixels: int) -> bytes:
    """A flat PNG of about ``pixels`` pixels: a few hundred KB that decode to ``pixels`` x 3 bytes."""
    side = int(pixels ** 0.5)
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def with_text_chunk(png: bytes, text: str) -> bytes:
    """``png`` with a tEXt chunk after IHDR: the same pixels, different bytes (so it is decoded again)."""
    body = b"Comment\x00" + text.encode()
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def element(page, kind: str, label: str):
    for e in page.elements:
        if e.kind == kind and e.proto.label == label:
            return e.proto
    raise RuntimeError(f"no {kind} labelled {label!r} on the page:\n{page.text[:600]}")


def check(page, what: str) -> None:
    problems = page.exceptions + page.alerts("error")
    if page.status != "success" or problems:
        raise RuntimeError(f"{what}: {page.status}: {problems or page.compile_error}")


def visit(url: str, files: list[tuple[str, bytes | None]], timeout: float, hold: threading.Barrier | None,
          seconds: float, make) -> dict:
    """One visitor: Explore -> Upload -> each file in turn (``make(name)`` builds it when its bytes are None)."""
    try:
        return _visit(url, files, timeout, hold, seconds, make)
    except BaseException as e:
        print(f"  a session failed: {type(e).__name__}: {str(e)[:500]}", flush=True)
        if hold is not None:
            hold.abort()            # the others stop waiting for this one
        raise


def _visit(url, files, timeout, hold, seconds, make) -> dict:
    with Session(url, timeout) as s:
        page = s.run()
        check(page, "first page")
        s.set_widget(Session.string_state(element(page, "radio", "Image source").id, "Upload"))
        page = s.run()
        check(page, "upload page")
        uploader = next(e.proto.id for e in page.elements if e.kind == "file_uploader")
        infos, warnings = [], []
        for name, data in files:
            data = data if data is not None else make(name)
            infos.append(s.upload(name, data, "image/bmp" if name.endswith(".bmp") else "image/png"))
            del data
            s.set_widget(Session.uploader_state(uploader, infos))
            page = s.run()
            check(page, f"after uploading {name}")
            warnings += [w for w in page.alerts("warning") if "oldest were dropped" in w]
        shown = sum(1 for e in page.elements if e.kind == "table")
        if hold is not None:
            hold.wait()                 # every session has uploaded everything; stay while memory is read
            s.idle(seconds)
        print(f"  session {s.session_id[:8]}: {len(files)} files uploaded", flush=True)
        return {"session": s.session_id, "dropped_warning": bool(warnings), "tables": shown}


def progress(started: float, what: str, pid: int) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {what}; server {rss_bytes(pid) / MB:,.0f} MB", flush=True)


def mb(n: float) -> str:
    return f"{n / MB:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--files", type=int, default=3, help="BMP uploads per session")
    parser.add_argument("--file-mb", type=float, default=19, help="size of each BMP (Streamlit's cap is 20 MB)")
    parser.add_argument("--heavy", type=int, default=4,
                        help="sessions that also upload a PNG of nearly MAX_PIXELS pixels")
    parser.add_argument("--hold", type=float, default=15, help="seconds every session stays with its uploads")
    parser.add_argument("--ttl", type=int, default=20,
                        help="server.disconnectedSessionTTL: seconds Streamlit keeps a session that left")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed for one script run")
    args = parser.parse_args()
    if args.file_mb * MB > FILE_CAP:
        parser.error("--file-mb is over Streamlit's per-file cap of 20 MB")

    from streamlit.logger import set_log_level
    set_log_level("error")          # importing the app outside a server warns once per cached function

    import app.inputs
    import vitrm
    from vitrm.images import MAX_CONCURRENT_DECODES

    budget = app.inputs.UPLOAD_BUDGET_BYTES
    file_bytes = int(args.file_mb * MB)
    heavy = heavy_png(int(vitrm.MAX_PIXELS * 0.98))
    command = "python -m bench.upload_memory " + " ".join(sys.argv[1:])

    def plan(i: int) -> list[tuple[str, bytes | None]]:
        bmps = [(f"s{i:02d}-photo{j}.bmp", None) for j in range(args.files)]
        if i < args.heavy:
            bmps.insert(len(bmps) - 1, (f"s{i:02d}-large.png", with_text_chunk(heavy, f"session {i}")))
        return bmps

    def make(name: str) -> bytes:
        return bmp(zlib.crc32(name.encode()), file_bytes)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        has_weights = (FLAGSHIP / "model.safetensors").is_file()
        root, _, described = checkpoints_root(FLAGSHIP if has_weights else None, tmp)
        env = {"VITRM_CHECKPOINTS": str(root), "OMP_NUM_THREADS": "1",
               "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(args.ttl),
               # A browser answers the server's websocket pings at any time; this client only while it reads,
               # and a 19 MB upload on a busy machine can outlast the ping timeout.
               "STREAMLIT_SERVER_WEBSOCKET_PING_INTERVAL": "600"}
        log = tmp / "streamlit.log"
        began = time.perf_counter()
        with serve_process(log, env=env, timeout=600) as (url, process):
            progress(began, "server up", process.pid)
            sampler = Sampler(process.pid)
            sampler.start()
            sampler.phase = "warm-up"
            visit(url, [("warmup.bmp", bmp(0, 1 * MB))], args.timeout, None, 0, make)
            time.sleep(3)
            baseline = rss_bytes(process.pid)
            progress(began, "warm-up session done; baseline taken", process.pid)
            lone_heavy = None
            if args.heavy:
                sampler.phase = "lone heavy decode"
                visit(url, [("warmup-large.png", with_text_chunk(heavy, "warm-up"))], args.timeout, None, 0, make)
                lone_heavy = sampler.peak({"lone heavy decode"}) - baseline
                time.sleep(3)
                progress(began, "lone large decode done", process.pid)

            sampler.phase = "uploading"
            hold = threading.Barrier(args.sessions + 1)
            started = time.perf_counter()
            with ThreadPoolExecutor(args.sessions) as pool:
                futures = [pool.submit(visit, url, plan(i), args.timeout, hold, args.hold, make)
                           for i in range(args.sessions)]
                try:
                    hold.wait(timeout=args.timeout * (args.files + 2))
                except threading.BrokenBarrierError:
                    print("  not every session got through; see the failures above", flush=True)
                upload_seconds = time.perf_counter() - started
                progress(began, f"all {args.sessions} sessions uploaded everything", process.pid)
                sampler.phase = "holding"
                time.sleep(min(args.hold, 5))
                holding = rss_bytes(process.pid)
                results = [f.result() for f in futures]
            sampler.phase = "after"
            progress(began, "sessions closed", process.pid)
            time.sleep(args.ttl + 5)
            # A new visitor's upload: Streamlit reaps the expired sessions, the app sweeps their uploads.
            visit(url, [("late-visitor.bmp", bmp(1, 1 * MB))], args.timeout, None, 0, make)
            time.sleep(3)
            after = rss_bytes(process.pid)
            sampler.stop()
            high_water = high_water_bytes(process.pid)
        log_text = log.read_text(errors="replace")

    peak = max(sampler.peak(), high_water)
    per_decode = vitrm.MAX_PIXELS * 3 * DECODE_COPIES
    per_session = budget + FILE_CAP
    ceiling = baseline + args.sessions * per_session + MAX_CONCURRENT_DECODES * per_decode
    uploaded = args.sessions * args.files * file_bytes + min(args.heavy, args.sessions) * len(heavy)
    dropped = sum(r["dropped_warning"] for r in results)
    tracebacks = log_text.count("Traceback")

    print(f"command: {command}")
    print(f"checkpoint: {described}")
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average {os.getloadavg()[0]:.1f} at the end; server and clients on this machine")
    print(f"{args.sessions} sessions at once, each uploading {args.files} BMPs of {mb(file_bytes)} one at a time"
          + (f", the first {args.heavy} also a {len(heavy) / 1e3:.0f} KB PNG of {vitrm.MAX_PIXELS * 0.98:,.0f} pixels"
             if args.heavy else "")
          + f": {uploaded / 1e9:.2f} GB uploaded in {upload_seconds:.0f} s; {dropped} of {args.sessions} sessions "
          f"were told the oldest upload was dropped; {tracebacks} tracebacks in the server's log")
    print()
    print("| server memory (VmRSS, process and children) | MB |\n|---|---|")
    print(f"| idle baseline (after a warm-up session) | {baseline / MB:,.0f} |")
    print(f"| peak while uploading and holding (sampled every 0.2 s; VmHWM) | "
          f"{sampler.peak({'uploading', 'holding'}) / MB:,.0f} ({high_water / MB:,.0f}) |")
    print(f"| every session holding its uploads | {holding / MB:,.0f} |")
    print(f"| after the sessions left and were forgotten ({args.ttl} s) | {after / MB:,.0f} |")
    print()
    print(f"ceiling = baseline {mb(baseline)} + {args.sessions} sessions x (budget {mb(budget)} + one file in flight "
          f"{mb(FILE_CAP)}) + {MAX_CONCURRENT_DECODES} decodes x {mb(per_decode)} "
          f"(MAX_PIXELS {vitrm.MAX_PIXELS:,} x 3 bytes x {DECODE_COPIES}) = {mb(ceiling)}")
    if lone_heavy is not None:
        print(f"a lone decode of the large PNG raised the server's memory by {mb(lone_heavy)} above the baseline")
    verdict = "under" if peak <= ceiling else "OVER"
    print(f"peak {mb(peak)} is {verdict} the ceiling ({100 * (peak - baseline) / (ceiling - baseline):.0f}% of the "
          f"allowance above the baseline); after the sessions left: {mb(after - baseline)} above the baseline")
    if peak > ceiling:
        sys.exit(1)


if __name__ == "__main__":
    main()
