"""The terminal's sync with the server, between taps: uploads, pushes, time, online state.

One sync cycle is a short list of steps, one HTTP request each: heartbeat (with the clock),
upload of unacknowledged journal records in batches (the first batch carries the heartbeat, so
a cycle with records to send makes no heartbeat request of its own), the blacklist (delta, or the full list
in pages), pending loads, parameters and, on doors, the access lists. The caller runs
``step()`` from its idle loop and serves a waiting card between steps, so a sale waits at
most one request, whose socket timeout is the configured budget.

Online/offline: online while the server answers; the first failed request marks the terminal
offline from that moment (``offline_since``); the next answered request brings it back. A
terminal whose uploads are switched off in its settings while the server answers is
"unauthorised offline": its records carry that flag and the server holds them from settlement.

Records are streamed from flash twice (once for the MAC, once to send) in small chunks: an
upload batch never sits in RAM.

Usage::

    s = Sync(cfg, key, journal, blacklist, loads, params, clock)
    s.start_cycle()
    while s.busy():
        s.step()             # one request; serve a tapped card between steps
"""

import os

from firmware.http_client import HttpClient, HttpError
from firmware.uidstore import UidStoreError, VersionMismatch
from protocol import cbor, crypto, messages

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_API = "/api/v1/terminal/"
_CHUNK = const(8)  # records read from flash at a time
# A page of UID keys per answer: its bytes are copied twice while the answer is opened
# (envelope body, then the field), so it is kept to what a 64 KB heap does without strain.
PAGE_KEYS = const(400)
_LOADS_MAX = const(200)  # pending loads per answer (16 bytes each)
_RESP_SIZE = const(4096)  # biggest answer: a page of 400 UID keys (2,800 bytes) or 200 loads
_REC = const(64)
MAX_DRIFT_S = const(5)  # the clock is set from the server when it is further off than this

STEP_HEARTBEAT = const(0)
STEP_UPLOAD = const(1)
STEP_BLACKLIST = const(2)
STEP_LOADS = const(3)
STEP_PARAMS = const(4)
STEP_ACCESS = const(5)
STEP_DONE = const(6)


_reserved = [bytearray(0)]


def reserve():
    """Allocate the answer buffer now, at boot before the heap fragments (8 KB in one piece)."""
    if not _reserved[0]:
        _reserved[0] = bytearray(_RESP_SIZE)


class SyncError(Exception):
    """The server answered but refused a request, or answered something unusable."""


class ClockRefused(SyncError):
    """The server refused a request's time stamp: our clock is off by more than the skew."""


class Sync:
    def __init__(self, terminal_id, key, server_url, journal, blacklist, loads, params, clock,
                 firmware="0.1.0", upload_enabled=True, batch=64, timeout_s=3, access=None):
        self.tid = terminal_id
        self.key = key
        self.journal = journal
        self.blacklist = blacklist
        self.loads = loads
        self.params = params
        self.clock = clock
        self.access = access
        self.firmware = firmware
        self.upload_enabled = upload_enabled
        self.batch = batch
        self.http = HttpClient(server_url, timeout_s)
        self.online = False
        self.offline_since = 0
        self.reachable = False
        self.last_sync = 0
        self.clock_drift = 0
        self.last_error = ""
        self.rejected = 0
        self.requests = 0
        self.page_keys = PAGE_KEYS  # UID keys per answer this terminal asks for (door lists too)
        self._ts_offset = 0  # request stamps only, from an unsigned hint; sealed answers set the clock
        reserve()
        self._resp = _reserved[0]
        self._chunk = bytearray(_CHUNK * _REC)
        self._step = STEP_DONE
        self._bl_offset = 0
        self._bl_writer = None
        self._bl_version = 0
        self._bl_full = False  # the next blacklist request asks for the whole list
        self._server_bl = -1  # blacklist / params versions the last heartbeat named (-1: unknown)
        self._server_params = -1
        self._server_loads = -1
        self._loads_version = -2  # the loads fingerprint of the list on flash (-2: none yet)
        self._cycle_at = -1 << 30
        self._gap = 0  # seconds from this cycle's start to the next one's
        self.force = False

    @classmethod
    def from_config(cls, cfg, journal, blacklist, loads, params, clock, firmware="0.1.0", access=None):
        return cls(cfg.terminal_id, cfg.terminal_key, cfg.server_url, journal, blacklist, loads, params, clock,
                   firmware, cfg.upload_enabled, timeout_s=cfg.sync_timeout_s, access=access)

    def tick(self, interval_s):
        """From the idle loop: run one step of the cycle in progress, or start a cycle when
        ``interval_s`` less up to a tenth (drawn afresh each cycle, never more than the interval:
        a lost card must be refused within one) has passed since the last one began, or
        ``force`` is set. True if a request was made. The jitter spreads terminals that an
        outage or a busy server brought into step."""
        if not self.busy():
            now = self.clock.now()
            if not self.force and now - self._cycle_at < self._gap:
                return False
            self.force = False
            self._cycle_at = now
            self._gap = interval_s - os.urandom(1)[0] % (interval_s // 10 + 1)
            self.start_cycle()
        self.step()
        return True

    # -- state -----------------------------------------------------------------------------

    def unauthorised_offline(self):
        """True when records must carry FLAG_UNAUTHORISED_OFFLINE: uploads switched off by hand
        while the server answers."""
        return not self.upload_enabled and self.reachable

    def network_down_since(self):
        """UTC second the network went down, 0 while online (for the credit-wallet switch)."""
        return 0 if self.online else self.offline_since

    def _up(self):
        self.online = True
        self.reachable = True
        self.offline_since = 0

    def _down(self, why):
        self.last_error = why
        if self.online or not self.offline_since:
            self.offline_since = self.clock.now()
        self.online = False
        self.reachable = False
        self.http.close()

    # -- cycle -----------------------------------------------------------------------------

    def start_cycle(self):
        self._step = STEP_HEARTBEAT

    def busy(self):
        return self._step != STEP_DONE

    def run_cycle(self):
        """A whole cycle at once (tests and idle terminals); True if it ended online."""
        self.start_cycle()
        while self.busy():
            self.step()
        return self.online

    def step(self):
        """Run one request of the cycle. Network failures end the cycle offline; a refused
        request is recorded in ``last_error`` and the cycle goes on with the next step."""
        s = self._step
        try:
            if s == STEP_HEARTBEAT:
                if self.upload_enabled and self.journal.unacked_count() > 0:
                    try:
                        more = self._upload(True)
                    except ClockRefused:
                        more = self._upload(True)  # stamped with the server's time hint now
                    self._step = STEP_UPLOAD if more else STEP_BLACKLIST
                else:
                    self._heartbeat()
                    self._step = STEP_UPLOAD
            elif s == STEP_UPLOAD:
                if not self.upload_enabled or not self._upload():
                    self._step = STEP_BLACKLIST
            elif s == STEP_BLACKLIST:
                if not self._blacklist():
                    self._step = STEP_LOADS
            elif s == STEP_LOADS:
                if self.loads is not None:  # doors keep no pending loads
                    self._loads()
                self._step = STEP_PARAMS
            elif s == STEP_PARAMS:
                self._params()
                self._step = STEP_ACCESS if self.access is not None else STEP_DONE
            elif s == STEP_ACCESS:
                if not self.access.sync_step(self):
                    self._step = STEP_DONE
            if self._step == STEP_DONE:
                self.last_sync = self.clock.now()
        except HttpError as e:
            self._down(str(e))
            self._abort_blacklist()
            self._step = STEP_DONE
        except SyncError as e:
            self.last_error = str(e)
            self._abort_blacklist()
            self._step = STEP_PARAMS if s < STEP_PARAMS else STEP_DONE if s >= STEP_ACCESS or \
                self.access is None else STEP_ACCESS

    # -- requests --------------------------------------------------------------------------

    def request(self, endpoint, mtype, fields, expected):
        """Seal, send and check one request; returns the answer's fields. A request refused for
        our clock is sent once more stamped with the server's time hint."""
        for attempt in (0, 1):
            nonce = os.urandom(messages.NONCE_SIZE)
            wire = messages.seal(self.key, self.tid, mtype, fields, self.stamp(), nonce)
            self.requests += 1
            status, _ = self.http.post(_API + endpoint, len(wire), lambda w: w(wire))
            try:
                return self._answer(status, expected, nonce)
            except ClockRefused:
                if attempt:
                    raise
        raise SyncError("unreachable")

    def stamp(self):
        """The time to stamp a request with: our clock, corrected by the server's last hint."""
        return self.clock.now() + self._ts_offset

    def _answer(self, status, expected, nonce):
        body = self.http.read_body(self._resp)
        if status != 200:
            text, hint = _error_text(body)
            if hint and "clock" in text:
                self._ts_offset = hint - self.clock.now()
                raise ClockRefused("server refused our clock (HTTP %d): %s" % (status, text))
            raise SyncError("server refused (HTTP %d): %s" % (status, text))
        try:
            ans = messages.unseal(body, self.key, expected, None)
        except Exception as e:  # MessageError: a forged or garbled answer
            raise SyncError("bad answer to %s: %s" % (expected, e))
        if ans.get("re") != nonce:
            raise SyncError("answer to %s does not echo our nonce: replayed?" % expected)
        self._up()
        return ans

    def _heartbeat_fields(self):
        j = self.journal
        return {"journal_fill": j.fill_permille(), "unacked": j.unacked_count(), "last_seq": j.last_seq(),
                "blacklist_version": self.blacklist.version, "offline_since": self.offline_since,
                "access_version": self.access.version() if self.access is not None else 0,
                "firmware": self.firmware, "clock_drift": self.clock_drift}

    def _heartbeat(self):
        self._heard(self.request("heartbeat", "heartbeat", self._heartbeat_fields(), "heartbeat_ack"))

    def _heard(self, ans):
        """Take the clock and the versions from a heartbeat's answer."""
        self._set_time(ans["server_time"])
        self._server_bl = ans.get("blacklist_version", -1)
        self._server_params = ans.get("params_version", -1)
        self._server_loads = ans.get("loads_version", -1)

    def _set_time(self, server_time):
        """Set the clock from a sealed answer (authenticated and fresh: it echoes our nonce)."""
        drift = self.clock.now() - server_time
        self.clock_drift = drift
        self._ts_offset = 0
        if drift > MAX_DRIFT_S or drift < -MAX_DRIFT_S:
            self.clock.set(server_time)

    def _upload(self, with_heartbeat=False):
        """Upload one batch (carrying the heartbeat if asked); True if more records are waiting."""
        j = self.journal
        first = j.first_unacked()
        n = min(self.batch, j.unacked_count())
        if n <= 0:
            return False
        nonce = os.urandom(messages.NONCE_SIZE)
        hb = self._heartbeat_fields() if with_heartbeat else None
        prefix = messages.upload_body_prefix(self.tid, self.stamp(), nonce, n, hb)
        hb = None
        size = messages.upload_body_size(prefix, n)
        mac = crypto.HmacSha256(self.key)
        mac.update(prefix)
        self._each_record(first, n, mac.update)
        head = messages.upload_envelope_prefix(self.tid, mac.digest(), size)

        def write(w):
            w(head)
            w(prefix)
            self._each_record(first, n, w)

        self.requests += 1
        status, _ = self.http.post(_API + "upload", len(head) + size, write)
        ans = self._answer(status, "ack", nonce)
        if with_heartbeat:
            if "server_time" not in ans:
                raise SyncError("the server did not answer the heartbeat sent with the upload")
            self._heard(ans)
        acked = ans["acked"]
        self.rejected += len(ans["rejected"])
        if acked > j.acked_seq() and acked <= j.last_seq():
            j.ack(acked)
        return acked >= first + n - 1 and j.unacked_count() > 0

    def _each_record(self, first, n, sink):
        item = messages.record_item_head()
        mv = memoryview(self._chunk)
        done = 0
        while done < n:
            k = self.journal.read_unacked(first + done, self._chunk, min(_CHUNK, n - done))
            if k <= 0:
                raise SyncError("journal lost records %d.. while uploading" % (first + done))
            for i in range(k):
                sink(item)
                sink(mv[i * _REC:(i + 1) * _REC])
            done += k

    def _blacklist(self):
        """One blacklist request; True while a full list is still arriving in pages."""
        bl = self.blacklist
        if self._bl_writer is None and not self._bl_full and self._server_bl == bl.version:
            bl.mark_updated(self.clock.now())  # the heartbeat says nothing changed
            return False
        since = 0 if self._bl_full else bl.version
        ans = self.request("blacklist", "blacklist_req",
                           {"since": since, "offset": self._bl_offset, "max": PAGE_KEYS}, "blacklist")
        now = self.clock.now()
        if not ans["full"]:
            if self._bl_full:
                raise SyncError("asked for the whole blacklist, got a delta")
            if ans["version"] != bl.version:
                try:
                    bl.apply(ans, now)
                except VersionMismatch:
                    self._bl_full = True  # our list is not the one the delta starts from
                    return True
            else:
                bl.mark_updated(now)
            return False
        total = ans.get("total", len(ans["added"]) // 7)
        offset = ans.get("offset", 0)
        if offset != self._bl_offset or (self._bl_writer is not None and ans["version"] != self._bl_version):
            self._abort_blacklist()  # the list changed between pages, or a page went missing: again
            self._bl_full = True
            return True
        if self._bl_writer is None:
            self._bl_writer = bl.begin_full(ans["version"])
            self._bl_version = ans["version"]
            self._bl_full = True
        try:
            self._bl_writer.write_chunk(ans["added"])
        except UidStoreError as e:
            self._abort_blacklist()
            raise SyncError("bad blacklist page: %s" % e)
        self._bl_offset = offset + len(ans["added"]) // 7
        if self._bl_offset < total:
            return True
        self._bl_writer.commit()
        self._bl_writer = None
        self._bl_offset = 0
        self._bl_full = False
        bl.mark_updated(now)
        return False

    def _abort_blacklist(self):
        if self._bl_writer is not None:
            self._bl_writer.abort()
        self._bl_writer = None
        self._bl_offset = 0

    def _loads(self):
        if self._server_loads >= 0 and self._server_loads == self._loads_version:
            return  # the heartbeat says the pending loads are the ones on flash
        want = self._server_loads
        ans = self.request("loads", "loads_req", {"max": _LOADS_MAX}, "loads")
        self.loads.replace(ans["loads"])
        self._loads_version = want

    def _params(self):
        if self._server_params >= 0 and self._server_params == self.params.version:
            return  # the heartbeat says the terminal holds the current parameters
        ans = self.request("params", "params_req", {}, "params")
        self.params.apply(ans["params"], ans.get("version"))
        self._set_time(ans["server_time"])


def _error_text(body):
    """``(reason, server time hint or 0)`` of a refusal's CBOR body."""
    try:
        err = cbor.loads(body)
        if isinstance(err, dict) and isinstance(err.get("error"), str):
            hint = err.get("server_time", 0)
            return err["error"], hint if isinstance(hint, int) and not isinstance(hint, bool) else 0
    except Exception:
        pass
    return "(no reason given)", 0
