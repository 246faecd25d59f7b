"""firmware/access.py: the curfew window, decisions on both lists, and the list sync against a
small in-test server that speaks the ``access_req`` / ``access`` fields (deltas from a version,
full lists in pages, hashes). Runs on CPython and on MicroPython (64 KB heap), where the
20,000-card list is checked to cost no RAM per card and no allocation per lookup."""

import gc
import hashlib
import struct
import sys

import flash_support as fs
import support

from firmware.access import (
    DENY_CURFEW,
    DENY_NOT_LISTED,
    GRANTED,
    AccessLists,
    AccessSyncError,
    in_curfew,
)
from protocol.errors import ProtocolError


class NetDown(Exception):
    """What ``Sync.request`` raises when the network fails (HttpError; not imported: 30 KB)."""


class Curfew:
    """The two parameters ``AccessLists`` reads."""

    def __init__(self, start, end):
        self.door_curfew_start = start
        self.door_curfew_end = end


class Keys:
    """A server-side list: explicit ascending 7-byte keys, or ``n`` generated 4-byte-UID keys."""

    def __init__(self, keys=None, n=0, base=0x04000000, step=3):
        self.keys = sorted(keys) if keys is not None else None
        self.n = len(self.keys) if keys is not None else n
        self.base = base
        self.step = step
        self._hash = None

    def key(self, i):
        if self.keys is not None:
            return self.keys[i]
        return b"\x00\x00\x00" + struct.pack(">I", self.base + self.step * i)

    def blob(self, offset, k, out=None):
        """Keys ``offset`` .. ``offset + k`` packed, into ``out`` when given (a slice of it is
        returned) so hashing a 20,000-card list does not churn the 64 KB test heap."""
        k = max(0, min(self.n, offset + k) - offset)
        out = bytearray(7 * k) if out is None else memoryview(out)[:7 * k]
        for j in range(k):
            if self.keys is not None:
                out[7 * j:7 * j + 7] = self.keys[offset + j]
            else:
                struct.pack_into(">I", out, 7 * j + 3, self.base + self.step * (offset + j))
        return out

    def hash(self):
        if self._hash is None:
            h = hashlib.sha256()
            for i in range(0, self.n, 256):
                h.update(self.blob(i, 256, _HASH_BUF))
            self._hash = h.digest()[:16]
        return self._hash


_HASH_BUF = bytearray(7 * 256)  # allocated once, before the heap fragments
_PAGE_BUF = bytearray(7 * 400)  # one page of answer, reused as the door reuses its answer buffer


class Server:
    """Answers ``access_req`` as the sync server does; ``request`` has ``Sync.request``'s signature."""

    page_keys = 400  # what the door asks for (Sync.page_keys)

    def __init__(self, page=800):
        self.page = page
        self.lists = [Keys([]), Keys([])]
        self.versions = [0, 0]
        self.history = [{}, {}]  # version -> frozenset of keys (explicit lists only)
        self.requests = []  # the fields of each request, while ``keep`` is true
        self.keep = True
        self.count = 0
        self.before = None  # called with the request fields before answering
        self.fail = None  # exception raised by the next request

    def set(self, i, keys):
        self.versions[i] += 1
        self.lists[i] = keys
        if keys.keys is not None:
            self.history[i][self.versions[i]] = frozenset(keys.keys)

    def request(self, endpoint, mtype, fields, expected):
        assert (endpoint, mtype, expected) == ("access", "access_req", "access")
        self.count += 1
        if self.keep:
            self.requests.append(dict(fields))
        if self.fail is not None:
            e, self.fail = self.fail, None
            raise e
        if self.before is not None:
            self.before(fields)
        i = fields["list"]
        lst, v = self.lists[i], self.versions[i]
        ans = {"re": b"", "version": v, "hash": lst.hash(), "list": i, "since": fields["since"],
               "removed": b""}
        since = fields["since"]
        if since != 0 and (since == v or since in self.history[i]) and lst.keys is not None:
            old = self.history[i].get(since, frozenset(lst.keys))
            now = frozenset(lst.keys)
            ans["full"] = False
            ans["added"] = b"".join(sorted(now - old))
            ans["removed"] = b"".join(sorted(old - now))
            return ans
        off = fields["offset"]
        page = min(self.page, fields.get("max") or self.page)  # as the server: never more than asked
        buf = _PAGE_BUF if page <= self.page_keys else None
        ans.update({"full": True, "since": 0, "added": lst.blob(off, page, buf), "offset": off,
                    "total": lst.n})
        return ans


def sync_error():
    """What an unusable answer raises: the sync client's SyncError once another test has loaded
    it in this process (CPython under pytest), AccessSyncError otherwise."""
    mod = sys.modules.get("firmware.sync")
    return mod.SyncError if mod is not None else AccessSyncError


def sync(acl, server):
    """A whole access step of a sync cycle; returns the requests it took."""
    n = server.count
    while acl.sync_step(server):
        assert server.count - n < 200, "access sync does not end"
    return server.count - n


def keys(*nums):
    """4-byte-UID keys numbered ``nums``."""
    return [fs.make_keys(n, 1, length=4)[0] for n in nums]


def uid(key):
    return memoryview(key[3:] if key[0] == 0 else key)


def n_of(key):
    return 4 if key[0] == 0 else 7


_OPEN = []


def lists(root, params=None):
    """Door lists in ``root`` (curfew 23:30-06:00 unless ``params`` says otherwise)."""
    acl = AccessLists(root, params or Curfew(1410, 360))
    _OPEN.append(acl)
    return acl


def close_all():
    while _OPEN:
        _OPEN.pop().close()


# -- curfew and decisions ------------------------------------------------------------------


def test_curfew_window_plain_and_wrapping_midnight():
    assert [in_curfew(m, 1410, 360) for m in (1409, 1410, 1439, 0, 359, 360, 720)] == [
        False, True, True, True, True, False, False]
    assert [in_curfew(m, 600, 720) for m in (599, 600, 719, 720)] == [False, True, True, False]
    assert not any(in_curfew(m, 0, 0) for m in range(0, 1440, 37))
    assert not any(in_curfew(m, 480, 480) for m in (479, 480, 481))


def test_anytime_list_enters_in_the_curfew_and_allow_list_only_outside_it():
    root = fs.tempdir("acl")
    try:
        acl = lists(root)
        resident, staff, stranger = keys(1, 2, 3)
        acl.change(0, resident, True)
        acl.change(1, staff, True)
        night, day = 1430, 12 * 60
        assert acl.allowed(uid(resident), 4, day) == GRANTED
        assert acl.allowed(uid(resident), 4, night) == DENY_CURFEW
        assert acl.allowed(uid(staff), 4, night) == GRANTED and acl.allowed(uid(staff), 4, day) == GRANTED
        assert acl.allowed(uid(stranger), 4, day) == DENY_NOT_LISTED
        assert acl.allowed(uid(stranger), 4, night) == DENY_NOT_LISTED
        acl.change(0, resident, False)  # revoked
        assert acl.allowed(uid(resident), 4, day) == DENY_NOT_LISTED
    finally:
        close_all()
        fs.rmtree(root)


def test_seven_byte_uids_and_no_curfew_without_params():
    root = fs.tempdir("acl")
    try:
        acl = lists(root, Curfew(0, 0))
        k7 = fs.make_keys(500, 2)
        acl.change(0, k7[0], True)
        assert acl.allowed(memoryview(k7[0]), 7, 1430) == GRANTED
        assert acl.allowed(memoryview(k7[1]), 7, 1430) == DENY_NOT_LISTED
        e = support.raises(ProtocolError, acl.allowed, memoryview(b"\x04\x01\x02\x03\x04"), 5, 0)
        assert "4 or 7 bytes, got 5" in str(e)
    finally:
        close_all()
        fs.rmtree(root)


def test_version_is_the_sum_of_both_lists_and_survives_a_reboot():
    root = fs.tempdir("acl")
    try:
        acl = lists(root)
        a, b = keys(1, 2)
        acl.change(0, a, True)
        acl.change(0, b, True)
        acl.change(1, a, True)
        assert (acl.list_version(0), acl.list_version(1), acl.version()) == (2, 1, 3)
        again = lists(root)
        assert again.version() == 3 and again.count(0) == 2 and again.listed(1, uid(a), 4)
    finally:
        close_all()
        fs.rmtree(root)


# -- sync ------------------------------------------------------------------------------------


def test_fresh_door_takes_both_lists_in_full_then_deltas():
    root = fs.tempdir("acl")
    try:
        srv = Server(page=2)
        a, b, c, d, e = keys(1, 2, 3, 4, 5)
        srv.set(0, Keys([a, b, c]))
        srv.set(1, Keys([d]))
        acl = lists(root)
        assert sync(acl, srv) == 3  # list 0 in two pages, list 1 in one
        assert [(r["list"], r["since"], r["offset"]) for r in srv.requests] == [(0, 0, 0), (0, 0, 2), (1, 0, 0)]
        assert acl.count(0) == 3 and acl.count(1) == 1 and acl.version() == 2
        assert acl.list_hash(0) == srv.lists[0].hash()
        srv.set(0, Keys([a, c, e]))  # b revoked, e granted
        assert sync(acl, srv) == 2
        r = srv.requests[-2]
        assert (r["list"], r["since"], r["hash"]) == (0, 1, Keys([a, b, c]).hash())
        assert acl.allowed(uid(b), 4, 600) == DENY_NOT_LISTED
        assert acl.allowed(uid(e), 4, 600) == GRANTED
        assert acl.list_version(0) == 2 and acl.list_hash(0) == srv.lists[0].hash()
        assert sync(acl, srv) == 2  # nothing new: one request per list
    finally:
        close_all()
        fs.rmtree(root)


def test_a_door_version_the_server_cannot_delta_from_gets_the_whole_list():
    root = fs.tempdir("acl")
    try:
        srv = Server()
        a, b, c = keys(1, 2, 3)
        srv.set(0, Keys([a]))
        acl = lists(root)
        sync(acl, srv)
        acl.change(0, c, True)  # a local change: version 2, which the server never sent
        srv.set(0, Keys([a, b]))
        srv.set(0, Keys([b, c]))
        sync(acl, srv)
        assert [(r["since"], r["offset"]) for r in srv.requests[-3:-1]] == [(2, 0), (0, 0)]
        assert acl.list_version(0) == 3 and acl.count(0) == 2
        assert acl.allowed(uid(a), 4, 600) == DENY_NOT_LISTED and acl.allowed(uid(b), 4, 600) == GRANTED
    finally:
        close_all()
        fs.rmtree(root)


def test_delta_with_a_mismatched_since_asks_for_the_full_list():
    root = fs.tempdir("acl")
    try:
        a, b = keys(1, 2)
        acl = lists(root)
        acl.change(0, a, True)  # version 1 here

        class Stale(Server):
            def request(self, endpoint, mtype, fields, expected):
                if fields["since"] != 0:  # a delta "from version 5": not what the door holds
                    self.requests.append(dict(fields))
                    return {"re": b"", "version": 6, "hash": b"", "full": False, "since": 5,
                            "added": b, "removed": b"", "list": fields["list"]}
                return Server.request(self, endpoint, mtype, fields, expected)

        srv = Stale()
        srv.set(0, Keys([b]))
        srv.versions[0] = 6
        sync(acl, srv)
        assert [r["since"] for r in srv.requests if r["list"] == 0] == [1, 0]
        assert acl.list_version(0) == 6 and acl.count(0) == 1 and not acl.listed(0, uid(a), 4)
    finally:
        close_all()
        fs.rmtree(root)


def test_hash_mismatch_at_the_same_version_takes_the_whole_list():
    root = fs.tempdir("acl")
    try:
        srv = Server()
        a, b, x = keys(1, 2, 99)
        srv.set(0, Keys([a, b]))
        acl = lists(root)
        sync(acl, srv)
        acl.replace(0, 1, a + b + x)  # same version, but the door's copy diverged (a stray grant)
        assert acl.listed(0, uid(x), 4)
        sync(acl, srv)
        assert [(r["since"], r["list"]) for r in srv.requests[-3:]] == [(1, 0), (0, 0), (0, 1)]
        assert not acl.listed(0, uid(x), 4) and acl.list_hash(0) == srv.lists[0].hash()
    finally:
        close_all()
        fs.rmtree(root)


def test_a_list_changing_between_pages_is_taken_again_from_the_start():
    root = fs.tempdir("acl")
    try:
        srv = Server(page=3)
        srv.set(0, Keys(n=10))
        acl = lists(root)
        newer = Keys(n=7, base=0x05000000)

        def change_once(fields):
            if fields["offset"] == 6 and srv.lists[0] is not newer:
                srv.set(0, newer)

        srv.before = change_once
        sync(acl, srv)
        offs = [r["offset"] for r in srv.requests if r["list"] == 0]
        assert offs == [0, 3, 6, 0, 3, 6], offs
        assert acl.list_version(0) == 2 and acl.count(0) == 7 and acl.list_hash(0) == newer.hash()
    finally:
        close_all()
        fs.rmtree(root)


def test_a_bad_page_or_a_network_failure_keeps_the_old_list_in_force():
    root = fs.tempdir("acl")
    try:
        srv = Server(page=2)
        a, b, c = keys(1, 2, 3)
        srv.set(0, Keys([a, b]))
        acl = lists(root)
        sync(acl, srv)
        bad = Keys([c])
        bad.keys = [c, a]  # unsorted: the door must refuse it
        bad.n = 2
        srv.set(0, bad)
        srv.history[0] = {}  # no delta from version 1: the full list comes at once
        srv.versions[0] = 9
        e = support.raises(sync_error(), acl.sync_step, srv)
        assert "not strictly ascending" in str(e)
        assert acl.list_version(0) == 1 and acl.listed(0, uid(a), 4) and acl.listed(0, uid(b), 4)
        srv.fail = NetDown("connection refused")
        support.raises(NetDown, acl.sync_step, srv)
        assert acl.list_version(0) == 1 and acl.count(0) == 2
        srv.set(0, Keys([c]))
        sync(acl, srv)  # the next cycle starts over from list 0 and takes the good list
        assert srv.requests[-2]["list"] == 0 and acl.list_version(0) == 10 and acl.count(0) == 1
    finally:
        close_all()
        fs.rmtree(root)


def test_answers_for_another_list_or_a_delta_instead_of_pages_are_refused():
    root = fs.tempdir("acl")
    try:
        acl = lists(root)

        class Wrong(Server):
            def request(self, endpoint, mtype, fields, expected):
                ans = Server.request(self, endpoint, mtype, fields, expected)
                ans["list"] = 1 - fields["list"]
                return ans

        e = support.raises(sync_error(), acl.sync_step, Wrong())
        assert "asked for access list 0, got list 1" in str(e)
        assert acl.version() == 0
    finally:
        close_all()
        fs.rmtree(root)


def test_twenty_thousand_cards_in_pages_without_ram_growing_with_the_list():
    root = fs.tempdir("acl")
    mp = support.IS_MICROPYTHON
    try:
        big = Keys(n=20000)
        srv = Server(page=800)
        srv.keep = False  # 51 requests' fields would crowd the 64 KB test heap
        srv.set(1, Keys(n=10, base=0x06000000))
        acl = lists(root)
        sync(acl, srv)
        probes = [big.key(i) for i in (0, 1, 9999, 19999)] + [b"\x00\x00\x00\x04\x00\x00\x01"]
        big.hash()
        small_alloc = _lookups(acl, probes) if mp else 0
        gc.collect()
        held_small = gc.mem_alloc() if mp else 0
        srv.set(0, big)
        assert sync(acl, srv) == 51  # 50 pages of the 400 the door asks for, list 1 unchanged
        assert acl.count(0) == 20000 and acl.list_hash(0) == big.hash()
        assert [acl.allowed(uid(k), 4, 600) for k in probes] == [GRANTED] * 4 + [DENY_NOT_LISTED]
        assert acl.allowed(uid(big.key(5)), 4, 1430) == DENY_CURFEW
        if mp:
            gc.collect()
            held_big = gc.mem_alloc()
            assert held_big - held_small < 512, "the list holds %d more bytes of RAM" % (held_big - held_small)
            big_alloc = _lookups(acl, probes)
            assert big_alloc == small_alloc == 0, "lookups allocated %d / %d bytes" % (small_alloc, big_alloc)
    finally:
        close_all()
        fs.rmtree(root)


def _lookups(acl, probes):
    """Bytes allocated by 50 rounds of lookups (0: none)."""
    mvs = [uid(k) for k in probes]
    allowed = acl.allowed
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(50):
        for mv in mvs:
            allowed(mv, 4, 600)
            allowed(mv, 4, 1430)
    return gc.mem_alloc() - before


def test_with_the_sync_client_loaded_errors_are_its_sync_errors():
    if support.IS_MICROPYTHON:
        support.skip("CPython only: importing the sync client costs 30 KB of the 64 KB test heap")
    from firmware.sync import SyncError

    root = fs.tempdir("acl")
    try:
        acl = lists(root)
        bad = Server()
        bad.set(0, Keys([b"\x00\x00\x00\x04\x00\x00\x02", b"\x00\x00\x00\x04\x00\x00\x01"], ))
        bad.lists[0].keys.reverse()
        e = support.raises(SyncError, acl.sync_step, bad)
        assert "not strictly ascending" in str(e) and acl.version() == 0
    finally:
        close_all()
        fs.rmtree(root)
