"""The node's connection to dvtd, kept off the ROS executor.

Two connections per daemon: one carries pipelined frames (replies matched by request id), the
other control lines (status once a second, set-budget), because the protocol forbids control
lines on a connection with frame replies pending. A supervisor thread connects (with back-off
while the daemon is away), writes frames and runs the control commands; a reader thread takes
the frame replies. The executor only ever calls `submit` (a dict insert and a queue put) and
`snapshot`, so a slow, hung or absent daemon never stalls the node's callbacks.
"""

import queue
import socket
import struct
import threading
import time
import traceback

from dvtd_client import Client, DvtdError, encode_frame

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0      # a local Unix socket: retrying costs microseconds, recovery matters
CONTROL_TIMEOUT_S = 2.0  # a status or set-budget answer slower than this means a hung daemon
REPLY_TIMEOUT_S = 5.0    # a frame unanswered this long: drop the connection and reconnect
SEND_TIMEOUT_S = 5.0     # a daemon that stops reading must not block the supervisor forever
STATUS_PERIOD_S = 1.0

_WAKE = object()  # queued to make the supervisor look at its flags now


class DaemonLink:
    """Frames to dvtd and results back, with reconnection. Callbacks run on the link's threads:
    `on_result(reply, context, t_in_ns)` for an `ok` reply, `on_drop(reason, detail)` for a
    frame that will get no result, `log(level, text)` for state changes."""

    def __init__(self, path, max_in_flight, on_result, on_drop, log):
        self.path = str(path)
        self.max_in_flight = max_in_flight
        self._on_result, self._on_drop, self._log = on_result, on_drop, log
        self._lock = threading.Lock()
        self._pending = {}     # request id -> (context, t_in_ns), this connection's frames
        self._next_id = 0
        self._gen = 0          # connection generation: replies/frames of an old one are stale
        self._connected = False
        self._status = None    # the daemon's last status reply
        self._last_error = None
        self._reader_error = None
        self._budget = None    # set-budget fields to keep applied, None: leave the daemon's
        self._budget_dirty = False
        self._budget_error = None
        self._connects = 0
        self._served = False   # whether the supervisor's current attempt got connected
        self._sendq = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="dvtd-link", daemon=True)

    def start(self):
        self._thread.start()

    def close(self, timeout=2.0):
        self._stop.set()
        self._sendq.put(_WAKE)
        self._thread.join(timeout)

    # --- called from the executor: never blocks on the daemon ---------------------------------

    def submit(self, pixels, height, width, channels, context, t_in_ns):
        """Queues one frame. Returns None, or why it was dropped ('disconnected', 'in_flight')."""
        with self._lock:
            if not self._connected:
                return "disconnected"
            if len(self._pending) >= self.max_in_flight:
                return "in_flight"
            rid = self._next_id
            self._next_id += 1
            self._pending[rid] = (context, t_in_ns)
            gen = self._gen
        # Registered before it is sent, so the reply can never arrive ahead of its entry.
        self._sendq.put((gen, encode_frame(rid, pixels, height, width, channels)))
        return None

    def set_budget(self, fields):
        """Keeps `fields` (parse_budget's dict, or None) applied: now, and after reconnects,
        since a restarted daemon forgets a set-budget override."""
        with self._lock:
            self._budget = fields
            self._budget_dirty = fields is not None
            self._budget_error = None
        self._sendq.put(_WAKE)

    def snapshot(self):
        with self._lock:
            return {
                "connected": self._connected,
                "status": self._status,
                "last_error": self._last_error,
                "budget_error": self._budget_error,
                "in_flight": len(self._pending),
                "reconnects": max(0, self._connects - 1),
            }

    # --- supervisor thread ---------------------------------------------------------------------

    def _supervise(self):
        delay = BACKOFF_MIN_S
        logged_at = None  # when "unreachable" was last logged in the current outage
        while not self._stop.is_set():
            self._served = False
            try:
                self._serve()
                why = "connection closed"
            except (OSError, DvtdError, ValueError) as e:
                why = f"{self.path}: {e}"
            except Exception as e:  # a bug here must not end the link for good: report, retry
                traceback.print_exc()
                why = f"internal error: {e!r}"
            if self._served:
                delay, logged_at = BACKOFF_MIN_S, None
            elif logged_at is None or time.monotonic() - logged_at >= 10.0:
                # The first failure loudly, then once every 10 s while the daemon stays away.
                self._log("error", f"dvtd unreachable ({why}); retrying with back-off")
                logged_at = time.monotonic()
            self._disconnected(why, quiet=self._stop.is_set())
            if self._stop.wait(delay):
                break
            if not self._served:
                delay = min(delay * 2, BACKOFF_MAX_S)
        self._disconnected("node shutting down", quiet=True)

    def _serve(self):
        """One connection's life: returns when the node stops, raises when the daemon goes."""
        frames = Client(self.path)
        try:
            ctl = Client(self.path)
        except OSError:
            frames.close()
            raise
        try:
            ctl.sock.settimeout(CONTROL_TIMEOUT_S)
            frames.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                                   struct.pack("ll", int(SEND_TIMEOUT_S), 0))
            status = ctl.command("status")  # proves a dvtd answers, not just a socket file
            with self._lock:
                self._gen += 1
                gen = self._gen
                self._connected = True
                self._connects += 1
                self._status = status
                self._last_error = None
                self._reader_error = None
                self._budget_dirty = self._budget is not None
            self._served = True
            self._log("info", f"connected to dvtd at {self.path} "
                              f"(backend {status.get('backend')}, model {status.get('model')})")
            reader = threading.Thread(target=self._read, args=(frames, gen), name="dvtd-replies",
                                      daemon=True)
            reader.start()
            try:
                self._loop(frames, ctl, gen)
            finally:
                _shutdown(frames)  # ends the reader's blocking read
                reader.join(1.0)
        finally:
            frames.close()
            ctl.close()

    def _loop(self, frames, ctl, gen):
        next_poll = time.monotonic() + STATUS_PERIOD_S
        while not self._stop.is_set():
            with self._lock:
                dirty, fields = self._budget_dirty, self._budget
                self._budget_dirty = False
            if dirty:
                self._apply_budget(ctl, fields)
            try:
                item = self._sendq.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                item = None
            if item is not None and item is not _WAKE:
                item_gen, frame = item
                if item_gen == gen:  # frames of a lost connection were counted dropped already
                    frames.sock.sendall(frame)
            if self._reader_error is not None:
                raise DvtdError(self._reader_error)
            now = time.monotonic()
            if now >= next_poll:
                status = ctl.command("status")
                with self._lock:
                    self._status = status
                    oldest = min((t for _, t in self._pending.values()), default=None)
                if oldest is not None and time.monotonic_ns() - oldest > REPLY_TIMEOUT_S * 1e9:
                    raise DvtdError(f"no reply for {REPLY_TIMEOUT_S:.0f} s")
                next_poll = now + STATUS_PERIOD_S

    def _apply_budget(self, ctl, fields):
        try:
            reply = ctl.command("set-budget", **fields)
        except DvtdError as e:
            if str(e) == "connection closed":
                raise
            with self._lock:
                self._budget_error = str(e)
            self._log("error", f"dvtd refused budget {fields}: {e}")
            return
        with self._lock:
            self._status = reply
            self._budget_error = None
        self._log("info", f"budget set on dvtd: {fields}")

    def _disconnected(self, why, quiet=False):
        with self._lock:
            was = self._connected
            self._connected = False
            self._gen += 1  # replies or queued frames of the old connection are now stale
            lost = len(self._pending)
            self._pending.clear()
            if why:
                self._last_error = why
        for _ in range(lost):
            self._on_drop("disconnected", why)
        if was and not quiet:
            self._log("error", f"lost dvtd ({why}); {lost} frames in flight dropped")

    # --- reader thread -------------------------------------------------------------------------

    def _read(self, frames, gen):
        while True:
            try:
                r = frames.recv()
            except (OSError, DvtdError, ValueError) as e:
                if gen == self._gen and not self._stop.is_set():
                    self._reader_error = f"reading replies: {e}"
                    self._sendq.put(_WAKE)
                return
            with self._lock:
                entry = self._pending.pop(r.request_id, None) if gen == self._gen else None
            if entry is None:
                continue  # stale: counted when its connection was lost
            context, t_in_ns = entry
            try:
                if r.ok:
                    self._on_result(r, context, t_in_ns)
                else:
                    self._on_drop("busy" if r.status == "busy" else "error",
                                  f"{r.status}: {r.text}")
            except Exception:  # e.g. publishing while the node shuts down: keep reading
                traceback.print_exc()


def _shutdown(client):
    try:
        client.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
