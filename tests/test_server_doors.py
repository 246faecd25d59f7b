"""Door access lists on the real sync server, over real HTTP: a dorm manager grants and revokes
(admin API and ``campuscard door``), doors fetch lists 0 (allow) and 1 (anytime) as deltas or
whole lists, and the real door firmware opens for a granted card and not after a revoke."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from protocol import records, uidlist
from terminal_sim.door_console import DoorConsole
from tests.server_fixtures import Campus, Card, DoorLists, ServerProcess, make_server, split_keys


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    yield from make_server(tmp_path_factory, "doors")


class Dorm:
    """A door group with one door on a running server, and helpers to grant and look."""

    _n = 0

    def __init__(self, srv: ServerProcess) -> None:
        Dorm._n += 1
        self.srv = srv
        self.campus = Campus(srv, f"dorm merchant {Dorm._n}")
        self.name = f"Building {Dorm._n}"
        self.path = "/doors/groups/" + quote(self.name)
        srv.admin("POST", "/doors/groups", {"name": self.name})
        self.door = self.campus.terminal("door")
        self.action("assign", terminal_id=self.door.tid)
        self.lists = DoorLists()

    def action(self, action: str, **body: Any) -> dict[str, Any]:
        return self.srv.admin("POST", f"{self.path}/{action}", body)

    def server_list(self, lst: int) -> list[bytes]:
        out = self.srv.admin("GET", f"{self.path}/lists/{lst}")
        return [uidlist.uid_key(bytes.fromhex(u)) for u in out["uids"]]

    def sync(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.lists.sync(self.door, 0), self.lists.sync(self.door, 1)


def test_group_grant_gives_the_whole_list_then_a_delta_after_a_revoke(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    cards = [dorm.campus.card() for _ in range(12)]
    out = dorm.action("grant-group", card_group="b-residents-1", cards=[c.card_no for c in cards])
    assert out["added"] == 12 and out["lists"][0]["count"] == 12

    first, _ = dorm.sync()
    assert len(first) == 1 and first[0]["full"] and first[0]["total"] == 12 and first[0]["offset"] == 0
    assert dorm.lists.keys[0] == {c.key for c in cards} and dorm.lists.keys[1] == set()
    packed = b"".join(sorted(c.key for c in cards))
    assert first[0]["hash"] == hashlib.sha256(packed).digest()[:16]
    assert dorm.lists.version[0] == out["lists"][0]["version"]

    again, _ = dorm.sync()
    assert [(a["full"], a["added"], a["removed"]) for a in again] == [(False, b"", b"")]

    gone = cards[3]
    out = dorm.action("revoke-group", card_group="b-residents-1", cards=[gone.card_no])
    assert out["removed"] == 1
    delta, _ = dorm.sync()
    assert len(delta) == 1 and not delta[0]["full"], delta
    assert delta[0]["removed"] == gone.key and delta[0]["added"] == b""
    assert delta[0]["since"] == first[0]["version"] and delta[0]["version"] == first[0]["version"] + 1
    assert gone.key not in dorm.lists.keys[0] and len(dorm.lists.keys[0]) == 11
    assert sorted(dorm.lists.keys[0]) == dorm.server_list(0)

    # an individual revoke of a card without an individual grant says where its access comes from
    status, body = srv.admin_raw("POST", f"{dorm.path}/revoke", {"card": cards[0].card_no})
    assert status == 404 and "revoke-group" in body["error"]


def test_a_door_whose_hash_differs_takes_the_whole_list(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    cards = [dorm.campus.card() for _ in range(5)]
    dorm.action("grant-group", card_group="b-hash", cards=[c.card_no for c in cards])
    dorm.sync()
    v = dorm.lists.version[0]
    wrong = bytes(16)
    same_version = dorm.door.access(0, v, wrong)
    assert same_version["full"] and same_version["total"] == 5 and same_version["version"] == v

    dorm.action("revoke-group", card_group="b-hash", cards=[cards[0].card_no])
    older = dorm.door.access(0, v, wrong)
    assert older["full"] and older["total"] == 4 and older["version"] == v + 1
    right = dorm.door.access(0, v, dorm.lists.hash(0))
    assert not right["full"] and right["removed"] == cards[0].key

    # a door that lost its flash edits (its own list differs at the same version) heals itself
    dorm.sync()
    dorm.lists.keys[0].add(cards[0].key)
    answers, _ = dorm.sync()
    assert answers[-1]["full"] and dorm.lists.keys[0] == {c.key for c in cards[1:]}


def test_temporary_cards_get_in_only_by_an_individual_grant(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    student = dorm.campus.card()
    visitor = dorm.campus.card("temporary")
    out = dorm.action("grant-group", card_group="b-temp", cards=[student.card_no, visitor.card_no])
    assert out["added"] == 1 and out["skipped_temporary"] == [visitor.card_no]
    status, body = srv.admin_raw("POST", f"{dorm.path}/grant-group",
                                 {"card_group": "all-temporary", "type": "temporary"})
    assert status == 400 and "one by one" in body["error"]
    dorm.sync()
    assert dorm.lists.keys[0] == {student.key}

    dorm.action("grant", card=visitor.card_no, note="visitor of room 301")
    dorm.sync()
    assert dorm.lists.keys[0] == {student.key, visitor.key}
    shown = srv.admin("GET", dorm.path)
    assert [(g["card_no"], g["type"], g["note"]) for g in shown["card_grants"]] == [
        (visitor.card_no, "temporary", "visitor of room 301")]


def test_an_expired_grant_drops_out_at_the_next_sync(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    guest, resident, other = dorm.campus.card(), dorm.campus.card(), dorm.campus.card()
    leaving = Card("04E5E6E7", "LEAVING-1")  # a card whose validity ends within the hour
    srv.admin("POST", "/cards", {"uid": "04E5E6E7", "card_no": leaving.card_no, "holder_id": "H-leaving",
                                 "type": "identity", "valid_until": srv.now() + 1800})
    dorm.action("grant", card=guest.card_no, until=srv.now() + 3600)
    dorm.action("grant-group", card_group="expiry-residents", cards=[resident.card_no, other.card_no])
    dorm.action("grant", card=leaving.card_no, anytime=True)
    dorm.sync()
    assert dorm.lists.keys == [{guest.key, resident.key, other.key, leaving.key}, {leaving.key}]
    status, body = srv.admin_raw("POST", f"{dorm.path}/grant",
                                 {"card": guest.card_no, "until": srv.now() - 5})
    assert status == 400 and "future" in body["error"]

    srv.advance(2 * 3600)
    d0, d1 = dorm.sync()
    assert not d0[0]["full"] and set(split_keys(d0[0]["removed"])) == {guest.key, leaving.key}
    assert not d1[0]["full"] and d1[0]["removed"] == leaving.key
    assert dorm.lists.keys == [{resident.key, other.key}, set()]


def test_lost_card_leaves_the_lists_and_comes_back_when_found(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    alice, bob = dorm.campus.card(), dorm.campus.card("staff")
    dorm.action("grants", card=alice.card_no)  # the collection-style name of "grant"
    dorm.action("grant", card=bob.card_no, anytime=True)
    dorm.sync()
    assert dorm.lists.keys == [{alice.key, bob.key}, {bob.key}]

    srv.admin("POST", f"/cards/{bob.card_no}/report-loss")
    d0, d1 = dorm.sync()
    assert d0[0]["removed"] == bob.key and d1[0]["removed"] == bob.key and not d0[0]["full"]
    assert dorm.lists.keys == [{alice.key}, set()]
    shown = srv.admin("GET", dorm.path)
    assert [g["card_status"] for g in shown["card_grants"] if g["card_no"] == bob.card_no] == ["lost"]

    srv.admin("POST", f"/cards/{bob.card_no}/cancel-loss")
    dorm.sync()
    assert dorm.lists.keys == [{alice.key, bob.key}, {bob.key}]
    status, body = srv.admin_raw("POST", f"{dorm.path}/grant", {"card": "NO-SUCH-CARD"})
    assert status == 404 and "NO-SUCH-CARD" in body["error"]


def test_replacement_card_opens_the_same_doors(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    old = dorm.campus.card()
    dorm.action("grant", card=old.card_no, anytime=True)
    dorm.sync()
    new_uid = "04F1F2F3"
    srv.admin("POST", f"/cards/{old.card_no}/replace", {"uid": new_uid, "card_no": old.card_no + "-2"})
    dorm.sync()
    new_key = uidlist.uid_key(bytes.fromhex(new_uid))
    assert dorm.lists.keys == [{new_key}, {new_key}]


def test_anytime_list_and_the_door_params_for_the_curfew(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    staff = [dorm.campus.card("staff") for _ in range(2)]
    students = [dorm.campus.card() for _ in range(3)]
    manager = dorm.campus.card()
    dorm.action("grant-group", card_group=f"staff-{dorm.name}", type="staff", anytime=True)
    dorm.action("grant-group", card_group=f"res-{dorm.name}", cards=[c.card_no for c in students])
    dorm.action("grant", card=manager.card_no, anytime=True)
    dorm.sync()
    # Every staff card of the campus is on list 1 (the type group), the residents on list 0 only;
    # list 0 holds everyone so that list 1 only ever adds the curfew.
    assert {c.key for c in staff} | {manager.key} <= dorm.lists.keys[1]
    assert not {c.key for c in students} & dorm.lists.keys[1]
    assert dorm.lists.keys[1] <= dorm.lists.keys[0]
    assert {c.key for c in students} <= dorm.lists.keys[0]
    assert sorted(dorm.lists.keys[1]) == dorm.server_list(1)

    late_staff = dorm.campus.card("staff")  # a new card of the type joins at the next sync
    dorm.sync()
    assert late_staff.key in dorm.lists.keys[1]

    mid = dorm.campus.merchant["id"]
    srv.admin("PUT", f"/params?merchant={mid}", {"door_curfew_start": 1410, "door_curfew_end": 360,
                                                 "door_pulse_ms": 5000})
    got = dorm.door.call("params", "params_req", {})
    assert {k: got["params"][k] for k in ("door_curfew_start", "door_curfew_end", "door_pulse_ms")} == {
        "door_curfew_start": 1410, "door_curfew_end": 360, "door_pulse_ms": 5000}
    assert got["params"]["tz_offset_s"] == 28800
    status, body = srv.admin_raw("PUT", f"/params?merchant={mid}", {"door_pulse_ms": 50})
    assert status == 400 and "100..60000" in body["error"]


def test_refusals(srv: ServerProcess) -> None:
    dorm = Dorm(srv)
    pos = dorm.campus.terminal("pos")
    status, body = pos.post("access", pos.seal("access_req", {"since": 0, "hash": b"", "list": 0, "offset": 0}))
    assert status == 403 and "doors only" in body["error"]
    for fields, what in (({"list": 2}, "'list'"), ({"hash": b"\x01" * 5}, "'hash'"), ({"offset": -1}, "'offset'")):
        msg = dict({"since": 0, "hash": b"", "list": 0, "offset": 0}, **fields)
        status, body = dorm.door.post("access", dorm.door.seal("access_req", msg))
        assert status == 400 and what in body["error"], body
    status, body = srv.admin_raw("POST", f"{dorm.path}/assign", {"terminal_id": pos.tid})
    assert status == 400 and "only doors" in body["error"]
    status, body = srv.admin_raw("POST", "/doors/groups/No%20Such%20Building/grant", {"card": "x"})
    assert status == 404 and "group-add" in body["error"]
    status, body = srv.admin_raw("POST", "/doors/groups", {"name": dorm.name})
    assert status == 409
    status, body = srv.admin_raw("POST", f"{dorm.path}/open-sesame", {})
    assert status == 404 and "grant-group" in body["error"]
    for fields, what in (({"since": -1}, "'since'"), ({"list": True}, "'list'")):
        msg = dict({"since": 0, "hash": b"", "list": 0, "offset": 0}, **fields)
        status, body = dorm.door.post("access", dorm.door.seal("access_req", msg))
        assert status == 400 and what in body["error"], body
    status, _ = srv.admin_raw("GET", "/doors/groups", token="wrong")
    assert status == 401

    unassigned = dorm.campus.terminal("door")
    empty = unassigned.access(0, 0)
    assert empty["full"] and empty["total"] == 0 and empty["version"] == 0
    assert empty["hash"] == hashlib.sha256(b"").digest()[:16]


def test_campuscard_door_commands_reach_the_running_server(srv: ServerProcess, tmp_path: Path) -> None:
    campus = Campus(srv, "cli dorm")
    door = campus.terminal("door")
    cards = [campus.card() for _ in range(3)]
    visitor = campus.card("temporary")

    def door_cmd(*args: str) -> str:
        result = srv.campuscard("door", args[0], "--db", str(srv.db), *args[1:])
        if result.returncode != 0:
            raise AssertionError(f"campuscard door {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    assert "door group" in door_cmd("group-add", "CLI Hall", "--note", "north gate")
    assert f"terminal {door.tid} is a door of CLI Hall" in door_cmd("assign", "CLI Hall", str(door.tid))
    listfile = tmp_path / "hall.txt"
    listfile.write_text("# residents\n" + "\n".join(c.card_no for c in cards) + "\n" + visitor.card_no + "\n")
    out = door_cmd("grant-group", "CLI Hall", "cli-residents", "--cards", str(listfile))
    assert "3 added" in out and f"skipped temporary card {visitor.card_no}" in out
    assert "anytime" in door_cmd("grant", "CLI Hall", visitor.card_no, "--anytime", "--until", "2099-01-01")
    shown = door_cmd("show", "CLI Hall")
    assert "list 0 allow" in shown and "4 cards" in shown and f"door {door.tid}" in shown and "lists behind" in shown
    assert "CLI Hall" in door_cmd("list")

    lists = DoorLists()
    lists.sync(door, 0)
    lists.sync(door, 1)
    assert lists.keys == [{c.key for c in cards} | {visitor.key}, {visitor.key}]
    door.heartbeat(access_version=lists.version[0] + lists.version[1])
    assert "lists current" in door_cmd("show", "CLI Hall")

    door_cmd("revoke", "CLI Hall", visitor.card_no)
    door_cmd("revoke-group", "CLI Hall", "cli-residents", "--card", cards[0].card_no)
    d0 = lists.sync(door, 0)
    assert not d0[0]["full"] and set(split_keys(d0[0]["removed"])) == {visitor.key, cards[0].key}
    door_cmd("revoke-group", "CLI Hall", "cli-residents")
    lists.sync(door, 0)
    lists.sync(door, 1)
    assert lists.keys == [set(), set()]
    assert json.loads(door_cmd("show", "CLI Hall", "--json"))["group_grants"] == []
    bad = srv.campuscard("door", "grant", "--db", str(srv.db), "No Hall", cards[1].card_no)
    assert bad.returncode == 1 and "does not exist" in bad.stderr


@pytest.mark.e2e
def test_the_door_firmware_opens_for_a_granted_card_and_not_after_a_revoke(srv: ServerProcess,
                                                                          tmp_path: Path) -> None:
    campus = Campus(srv, "firmware dorm")
    bundle = srv.admin("POST", "/terminals", {"merchant_id": campus.merchant["id"], "role": "door"})
    srv.admin("POST", "/doors/groups", {"name": "Firmware Hall"})
    srv.admin("POST", "/doors/groups/Firmware%20Hall/assign", {"terminal_id": bundle["terminal_id"]})
    ws = tmp_path / "door"
    ws.mkdir()
    (ws / "secrets.json").write_text(json.dumps({k: bundle[k] for k in ("terminal_key", "card_master",
                                                                         "issuer_master")}))
    console = DoorConsole(ws, server_url=f"http://127.0.0.1:{srv.port}", merchant_id=campus.merchant["id"],
                          terminal_id=bundle["terminal_id"])
    try:
        console.start()
        alice = console.card("alice")
        Card.issue(srv, alice.uid.hex().upper(), "FW-ALICE")
        console.term.service(f"time {srv.now()}")

        srv.admin("POST", "/doors/groups/Firmware%20Hall/grant", {"card": "FW-ALICE"})
        sync_line(console)
        assert console.access_state()["lists"][0][1] == 1  # the console's own first grants are gone
        assert "RELAY open 3000" in console.execute("tap alice")

        srv.admin("POST", "/doors/groups/Firmware%20Hall/revoke", {"card": "FW-ALICE"})
        sync_line(console)
        out = console.execute("tap alice")
        assert not any("RELAY open" in x for x in out), out
        assert console.access_state()["lists"][0][1] == 0
        assert "not on this door's lists" in console.execute("journal")[-1]
        sync_line(console)  # the denial goes up like the grant did: both signed, both stored
        recs = srv.admin("GET", "/cards/FW-ALICE")["records"]
        assert sorted((r["terminal_id"], r["type"]) for r in recs) == [
            (bundle["terminal_id"], records.DOOR_GRANTED), (bundle["terminal_id"], records.DOOR_DENIED)]
    finally:
        console.close()


def sync_line(console: DoorConsole) -> str:
    [line] = [x for x in console.execute("sync") if x.startswith("@sync ")]
    assert "online=1" in line, line
    return line
