"""Python client of dvtd (standard library only): binary frames and JSON control lines on the
daemon's Unix socket. Protocol: docs/protocol.md (version 1).

    from dvtd_client import Client
    with Client("/run/dvtd/dvtd.sock") as c:
        r = c.classify(pixels, height=28, width=28, channels=1)   # bytes, HWC u8
        print(r.label, r.confidence, r.exit_stage)
        print(c.command("status"))
"""

import json
import socket
import struct
from dataclasses import dataclass

REQUEST_MAGIC = b"DVTQ"
REPLY_MAGIC = b"DVTR"
VERSION = 1
# magic, version, reserved, request id, dtype, layout, channels, height, width, payload
# length, reserved, timestamp
HEADER = struct.Struct("<4sHHQBBHHHIIQ")
# magic, version, status, request id, class, exit stage, text length, confidence, gflops,
# latency us, compute us, timestamp
REPLY = struct.Struct("<4sHHQIHHffIIQ")
assert HEADER.size == 40 and REPLY.size == 48

DTYPE_U8, DTYPE_F32 = 0, 1
LAYOUT_HWC, LAYOUT_NCHW = 0, 1
STATUS = {0: "ok", 1: "busy", 2: "bad_request", 3: "bad_stream", 4: "internal"}


@dataclass
class Reply:
    request_id: int
    status: str
    class_id: int
    exit_stage: int
    confidence: float
    gflops: float
    latency_us: int
    compute_us: int
    timestamp_ns: int
    text: str

    @property
    def ok(self):
        return self.status == "ok"

    @property
    def label(self):
        return self.text if self.ok else None


class DvtdError(Exception):
    """The daemon refused a command or sent something unreadable."""


def encode_frame(request_id, pixels, height, width, channels, dtype=DTYPE_U8,
                 layout=LAYOUT_HWC, timestamp_ns=0):
    """Header + payload. `pixels` is bytes (u8) or bytes of little-endian f32 in [0, 1]."""
    size = height * width * channels * (1 if dtype == DTYPE_U8 else 4)
    if len(pixels) != size:
        raise ValueError(f"{len(pixels)} bytes for a {height}x{width}x{channels} image ({size})")
    return HEADER.pack(REQUEST_MAGIC, VERSION, 0, request_id, dtype, layout, channels,
                       height, width, len(pixels), 0, timestamp_ns) + bytes(pixels)


class Client:
    """One connection. Frames can be pipelined: `send` several, then `recv` their replies."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.rfile = self.sock.makefile("rb")
        self.next_id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.rfile.close()
        self.sock.close()

    def send(self, pixels, height, width, channels, dtype=DTYPE_U8, layout=LAYOUT_HWC,
             timestamp_ns=0):
        """Sends a frame without waiting; returns its request id."""
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall(encode_frame(rid, pixels, height, width, channels, dtype, layout,
                                       timestamp_ns))
        return rid

    def recv(self):
        """The next frame reply (match it to its frame by request_id)."""
        head = self._read(REPLY.size)
        (magic, version, status, rid, cls, stage, text_len, conf, gflops, lat, comp,
         ts) = REPLY.unpack(head)
        if magic != REPLY_MAGIC or version != VERSION:
            raise DvtdError(f"not a dvtd reply: {head[:6]!r}")
        text = self._read(text_len).decode("utf-8", "replace")
        return Reply(rid, STATUS.get(status, str(status)), cls, stage, conf, gflops, lat,
                     comp, ts, text)

    def classify(self, pixels, height, width, channels, **kw):
        """Sends one frame and waits for its reply."""
        self.send(pixels, height, width, channels, **kw)
        return self.recv()

    def command(self, cmd, **fields):
        """A control command (status, stats, set-budget, reload, drain, metrics, health);
        returns the reply dict, raising DvtdError when the daemon says ok: false."""
        msg = dict(cmd=cmd, **fields)
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        line = self.rfile.readline()
        if not line:
            raise DvtdError("connection closed")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise DvtdError(reply.get("error") or reply.get("health") or "refused")
        return reply

    def _read(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise DvtdError("connection closed")
        return data
