"""Answers that fit a terminal's 8 KB answer buffer, on the real sync server over real HTTP: a
door list of 2,500 cards and a blacklist of 2,500 cards come in pages of at most 1,000 keys
and reassemble to the server's list; deltas of up to 1,000 changes stay deltas, more become
paged whole lists; pending loads come 400 at a time, the oldest first; the heartbeat answer
names the blacklist and parameter versions."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from protocol import messages, uidlist
from tests.server_fixtures import Campus, Card, DoorLists, ServerProcess, Terminal, make_server, split_keys

ANSWER_BUFFER = 8192  # firmware/sync.py _RESP_SIZE
PAGE = 1000


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    yield from make_server(tmp_path_factory, "paging")


def issue(srv: ServerProcess, prefix: int, n: int) -> list[Card]:
    """``n`` student cards with UIDs ``prefix``000000.. in ascending order."""
    return [Card.issue(srv, f"{prefix:02X}{i:06X}", f"P{prefix:02X}-{i:05d}") for i in range(n)]


@pytest.fixture(scope="module")
def residents(srv: ServerProcess) -> list[Card]:
    return issue(srv, 0x31, 2500)


def pages(term: Terminal, endpoint: str, mtype: str, expected: str, fields: dict[str, Any]
          ) -> tuple[list[dict[str, Any]], list[int]]:
    """Fetch a whole list page by page as a terminal does: answers and their sizes on the wire."""
    answers, sizes = [], []
    offset = 0
    while True:
        ans, size = term.sized(endpoint, mtype, expected, dict(fields, offset=offset))
        assert ans["full"] and ans["offset"] == offset, ans
        answers.append(ans)
        sizes.append(size)
        offset += len(ans["added"]) // 7
        if offset >= ans["total"]:
            return answers, sizes
        assert ans["added"], "an empty page before the end"


def test_a_door_list_of_2500_cards_comes_in_pages_then_as_deltas(srv: ServerProcess, residents: list[Card]) -> None:
    campus = Campus(srv, "paging dorm")
    door = campus.terminal("door")
    srv.admin("POST", "/doors/groups", {"name": "Tower"})
    srv.admin("POST", "/doors/groups/Tower/assign", {"terminal_id": door.tid})
    refs = [c.card_no for c in residents]
    out = srv.admin("POST", "/doors/groups/Tower/grant-group", {"card_group": "tower", "cards": refs})
    assert out["added"] == 2500 and out["lists"][0]["count"] == 2500

    answers, sizes = pages(door, "access", "access_req", "access", {"since": 0, "hash": b"", "list": 0})
    assert [len(a["added"]) // 7 for a in answers] == [1000, 1000, 500]
    assert {a["total"] for a in answers} == {2500} and len({a["version"] for a in answers}) == 1
    assert max(sizes) <= ANSWER_BUFFER, sizes
    whole = b"".join(a["added"] for a in answers)
    keys = split_keys(whole)  # ascending across the pages too
    assert set(keys) == {c.key for c in residents}
    assert answers[0]["hash"] == hashlib.sha256(whole).digest()[:16]
    server = srv.admin("GET", "/doors/groups/Tower/lists/0")["uids"]
    assert [uidlist.uid_from_key(k).hex().upper() for k in keys] == server

    lists = DoorLists()
    assert len(lists.sync(door, 0)) == 3 and len(lists.keys[0]) == 2500

    srv.admin("POST", "/doors/groups/Tower/revoke-group", {"card_group": "tower", "cards": refs[:1]})
    [one] = lists.sync(door, 0)
    assert not one["full"] and one["removed"] == residents[0].key

    srv.admin("POST", "/doors/groups/Tower/revoke-group", {"card_group": "tower", "cards": refs[1:1001]})
    held = (lists.version[0], lists.hash(0))
    ans, size = door.sized("access", "access_req", "access", {"since": held[0], "hash": held[1], "list": 0,
                                                                "offset": 0})
    assert not ans["full"] and len(ans["removed"]) == 1000 * 7 and size <= ANSWER_BUFFER, size
    lists.sync(door, 0)
    assert len(lists.keys[0]) == 1499

    srv.admin("POST", "/doors/groups/Tower/revoke-group", {"card_group": "tower", "cards": refs[1001:2002]})
    answers = lists.sync(door, 0)  # 1,001 changes: the whole list instead
    assert [(a["full"], a["total"]) for a in answers] == [(True, 498)]
    assert lists.keys[0] == {c.key for c in residents[2002:]}

    srv.admin("POST", "/doors/groups/Tower/grant-group", {"card_group": "tower", "cards": refs})
    answers = lists.sync(door, 0)
    assert [len(a["added"]) // 7 for a in answers] == [1000, 1000, 500] and len(lists.keys[0]) == 2500
    assert lists.sync(door, 1)[0]["total"] == 0


def fetch_blacklist(term: Terminal, since: int) -> tuple[int, list[bytes] | None, list[dict[str, Any]]]:
    """(version, whole list or None for a delta, answers) the way firmware/sync.py fetches it."""
    answers: list[dict[str, Any]] = []
    keys: list[bytes] = []
    offset, version = 0, -1
    while len(answers) < 50:
        ans, size = term.sized("blacklist", "blacklist_req", "blacklist",
                               {"since": since if not offset else 0, "offset": offset})
        assert size <= ANSWER_BUFFER, size
        answers.append(ans)
        if not ans["full"]:
            return ans["version"], None, answers
        if offset and ans["version"] != version:
            offset, keys = 0, []  # the list changed between pages: start again
            continue
        version = ans["version"]
        keys += split_keys(ans["added"])
        offset += len(ans["added"]) // 7
        if offset >= ans["total"]:
            return version, keys, answers
    raise AssertionError("blacklist fetch did not finish")


def server_blacklist(srv: ServerProcess) -> list[bytes]:
    return [uidlist.uid_key(bytes.fromhex(e["uid"])) for e in srv.admin("GET", "/blacklist")["entries"]]


def test_blacklist_of_2500_cards_in_pages_and_deltas_up_to_1000_changes(srv: ServerProcess) -> None:
    cards = issue(srv, 0x52, 2501)
    refs = [c.card_no for c in cards]
    pos = Campus(srv, "paging canteen").terminal()
    srv.admin("POST", f"/cards/{refs[0]}/report-loss")
    held, keys, _ = fetch_blacklist(pos, 0)
    assert keys is not None and cards[0].key in keys

    srv.admin("POST", "/cards/bulk-freeze", {"cards": refs[1:1001], "reason": "graduated"})
    ans, size = pos.sized("blacklist", "blacklist_req", "blacklist", {"since": held})
    assert not ans["full"] and len(ans["added"]) == 1000 * 7 and ans["removed"] == b"", ans["full"]
    assert size <= ANSWER_BUFFER, size  # benchmarks/fleet.py's (c): a 1,000-change delta

    srv.admin("POST", "/cards/bulk-freeze", {"cards": refs[1001:2002], "reason": "graduated"})
    version, keys, answers = fetch_blacklist(pos, ans["version"])  # 1,001 changes: whole list
    assert keys is not None and [len(a["added"]) // 7 for a in answers] == [1000, 1000, 2]
    assert keys == server_blacklist(srv)

    srv.admin("POST", "/cards/bulk-freeze", {"cards": refs[2002:], "reason": "graduated"})
    version, keys, answers = fetch_blacklist(pos, 0)
    assert keys is not None and len(answers) == 3 and version == answers[-1]["version"]
    assert keys == server_blacklist(srv) and {c.key for c in cards} <= set(keys)
    assert keys == sorted(keys) and len(keys) == answers[0]["total"]

    # The list changes between two pages: the next page says so by its version.
    first, _ = pos.sized("blacklist", "blacklist_req", "blacklist", {"since": 0, "offset": 0})
    srv.admin("POST", f"/cards/{refs[5]}/resume")
    second, _ = pos.sized("blacklist", "blacklist_req", "blacklist", {"since": 0, "offset": PAGE})
    assert second["version"] == first["version"] + 1 and second["total"] == first["total"] - 1

    hb = pos.heartbeat()
    assert hb["blacklist_version"] == srv.admin("GET", "/blacklist")["version"]
    status, body = pos.post("blacklist", pos.seal("blacklist_req", {"since": 0, "offset": "x"}))
    assert status == 400 and "'offset'" in body["error"]


def test_pending_loads_come_400_at_a_time_oldest_first(srv: ServerProcess, residents: list[Card]) -> None:
    pos = Campus(srv, "loads canteen").terminal()
    door = Campus(srv, "loads dorm").terminal("door")
    topped = residents[:450]
    for card in reversed(topped):  # the oldest load is the last card's
        srv.admin("POST", f"/cards/{card.card_no}/top-up", {"amount": 500})
    ans, size = pos.sized("loads", "loads_req", "loads", {})
    entries = [messages.unpack_load(ans["loads"][i:i + 16]) for i in range(0, len(ans["loads"]), 16)]
    assert len(entries) == 400 and size <= ANSWER_BUFFER, size
    assert [e[0] for e in entries] == [c.key for c in reversed(topped)][:400]
    assert door.loads() == []  # doors keep no loads

    collected = topped[-100:]  # the 100 oldest loads are collected at the till
    ack = pos.upload([c.load(pos, 1, 500) for c in collected])
    assert ack["rejected"] == []
    rest = pos.loads()
    assert len(rest) == 350 and {k for k, *_ in rest} == {c.key for c in topped[:350]}

    status, body = srv.admin_raw("PUT", "/settings", {"max_loads_per_reply": 2048})
    assert status == 400 and "8 KB" in body["error"]


def test_heartbeat_names_the_parameter_version(srv: ServerProcess) -> None:
    campus = Campus(srv, "params canteen")
    pos = campus.terminal()
    before = pos.heartbeat()["params_version"]
    got = pos.call("params", "params_req", {})
    assert got["version"] == before
    srv.admin("PUT", "/params?merchant={}".format(campus.merchant["id"]), {"per_txn_limit": 4000})
    after = pos.heartbeat()
    assert after["params_version"] > before and pos.call("params", "params_req", {})["version"] == \
        after["params_version"]
