"""POS tap benchmark: the firmware under the MicroPython unix port selling 1,000 times against
the PN532 emulator, as a cashier would (amount, tap, card leaves), to four cards in turn.

Prints, per sale (docs/pos-performance.md says what each CPU figure means):

* the firmware's CPU with the emulated hardware excluded (``cpu_ms_per_sale``, the issue's
  goal, benchmarks/pos_cpu_mpy.py): the same terminal on the same driver in a MicroPython
  process of its own, the chip answering in that process and its share measured and taken
  off, no pty, no console; three runs spread over the benchmark, 41 rounds each: the fastest
  round, with each run's median (``cpu_median_ms_per_sale``: the lowest of them).
* CPU time of the simulator's firmware process (``process_cpu_ms_per_sale``: ``/proc/<pid>/stat``
  utime + stime over the 1,000 sales; the emulator runs in this process, so it is excluded).
  Includes keypad line parsing, the display line, and the poll that sees the card gone. Also
  split into user and system time: the system part is the kernel's side of the pty, the
  console pipe and the journal's fsync.
* reader commands (driver counter) and the modelled card I/O time at 106 kbit/s
  (``firmware.mifare`` time model over the card commands actually exchanged).
* where the CPU goes: a third pass sums the process CPU time (``time.clock``) of the polls and
  of the reader driver calls inside them, splitting the application (purse, limits, journal,
  display) from the reader driver and its UART.
* heap: the firmware runs with ``-X heapsize`` = its code + 64 KB (bytecode sits in the heap
  on the unix port); a second pass collects garbage before every poll, so the high-water
  above the code is what one tap needs at most (``heap_peak_bytes``, against 65,536).
* the pty floor, measured in the same run: the CPU a MicroPython process spends on one bare
  reader round trip over a pty (``benchmarks/pty_round_trip_mpy.py``: write, poll, read; no
  frame checks) times the reader commands of a sale. That part of the firmware's CPU is the
  kernel's pty, which the device does not have.
* blacklist lookup with 200,000 entries and journal capacity in 2 MB, from
  ``benchmarks/flash_store_mpy.py`` (run under MicroPython) when it is present.

The simulated flash (the terminals' workspace) lives on a RAM file system (``/dev/shm``) when
there is one: the device's flash is no host disk whose cache a journal fsync would flush.

The last line is one JSON object. Usage::

    .venv/bin/python benchmarks/pos_tap.py [--sales 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from terminal_sim.console import Console  # noqa: E402
from terminal_sim.terminal_process import DATA_HEAP, TerminalProcess  # noqa: E402
from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd  # noqa: E402

PARAMS = {"double_tap_gap_s": 0, "per_txn_limit": 10_000_000, "daily_limit": 10_000_000}


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of process ``pid`` (and its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (and its threads), in seconds."""
    user, system = cpu_times(pid)
    return user + system


CARDS = ("bench0", "bench1", "bench2", "bench3")  # customers in turn: no tap finds the last card's keys


def sell(term: TerminalProcess, console: Console, n: int) -> None:
    cards = [console.card(name) for name in CARDS]
    for i in range(n):
        card = cards[i % len(cards)]
        term.send("amount 100")
        console.field.place(card)
        out = term.send("poll")
        if not any("Paid 1.00" in line for line in out):
            raise SystemExit(f"sale {i} did not complete: {out}")
        console.field.remove(card)
        term.send("poll")


def removal_poll_commands(term: TerminalProcess, console: Console) -> int:
    """Reader commands of the poll that sees the card gone after a sale."""
    term.service("stats reset")
    sell_one = console.card(CARDS[0])
    term.send("amount 100")
    console.field.place(sell_one)
    term.send("poll")
    before = term.stats()["commands"]
    console.field.remove(sell_one)
    term.send("poll")
    return int(term.stats()["commands"] - before)


def cpu_per_line(term: TerminalProcess, pid: int, line: str, setup: str = "", n: int = 300) -> float:
    """Firmware CPU (ms) per console line ``line``, e.g. ``poll`` with no card on the reader."""
    if setup:
        term.send(setup)
    cpu0 = cpu_seconds(pid)
    for _ in range(n):
        term.send(line)
    return (cpu_seconds(pid) - cpu0) * 1000 / n


def run_mpy_json(script: str, args: list[str], heap: str | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` under MicroPython and return the JSON object of its last line."""
    heap_args = ["-X", f"heapsize={heap}"] if heap else []
    proc = subprocess.run([micropython_binary(), *heap_args, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, env=micropython_env(), cwd=mpy_cwd(), timeout=timeout)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"{script} gave no JSON line:\n{proc.stdout}{proc.stderr}") from None


def flash_store_figures() -> dict[str, Any]:
    """The blacklist and journal figures of benchmarks/flash_store_mpy.py (its last line)."""
    script = ROOT / "benchmarks" / "flash_store_mpy.py"
    if not script.exists():
        return {"blacklist_entries": None, "blacklist_lookup_ms": None, "journal_capacity_records_2mb": None,
                "flash_store_note": "benchmarks/flash_store_mpy.py not present"}
    doc = run_mpy_json("flash_store_mpy.py", [], heap="64K")
    return {k: doc.get(k) for k in ("blacklist_entries", "blacklist_lookup_ms", "journal_capacity_records_2mb")}


def pty_floor(round_trips: int = 20000) -> dict[str, float]:
    """CPU of bare PN532 round trips over a pty (benchmarks/pty_round_trip_mpy.py) against a
    responder thread here: what the kernel and a minimal UART loop cost per reader command."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    answer = b"\x00\x00\xff\x00\xff\x00" + b"\x00\x00\xff\x13\xed\xd5\x41\x00" + bytes(16) + b"\xea\x00"
    stop = threading.Event()

    def respond() -> None:
        pending = 0
        while not stop.is_set():
            if not select.select([master], [], [], 0.2)[0]:
                continue
            try:
                pending += len(os.read(master, 4096))
            except OSError:
                return
            while pending >= 12:  # one READ frame in, one ACK + answer out
                pending -= 12
                os.write(master, answer)

    responder = threading.Thread(target=respond, daemon=True)
    responder.start()
    try:
        return run_mpy_json("pty_round_trip_mpy.py", [path, str(round_trips)], timeout=300)
    finally:
        stop.set()
        responder.join()
        os.close(master)
        os.close(slave)


def in_process_cpu(workspace: Path, card_blocks: bytes, heap: str, sales: int, run: int) -> dict[str, float]:
    """The firmware's own CPU per sale with the chip in its process (benchmarks/pos_cpu_mpy.py);
    ``card_blocks``: the 64 blocks of each card, one card after the other; ``run`` numbers the
    run (each has a flash of its own)."""
    card = workspace / f"cpu-card-{run}.bin"
    card.write_bytes(card_blocks)
    flash = workspace / f"cpu-flash-{run}"
    flash.mkdir()
    return run_mpy_json("pos_cpu_mpy.py", [str(workspace), str(card), str(sales), str(flash)], heap=heap,
                        timeout=600)


def ram_dir() -> str | None:
    """A RAM file system for the workspace (the simulated flash), if this machine has one."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sales", type=int, default=1000)
    ap.add_argument("--heap", default="auto", help="-X heapsize for the firmware (default: its code + 64 KB)")
    args = ap.parse_args()
    n = args.sales
    with tempfile.TemporaryDirectory(prefix="pos-tap-", dir=ram_dir()) as tmp:
        console = Console(Path(tmp), "pn532", heapsize=args.heap)
        inproc: list[dict[str, float]] = []

        def own_cpu() -> None:  # one run of the in-process benchmark on the cards as they are now
            blocks = b"".join(console.card(name).block(i) for name in CARDS for i in range(64))
            inproc.append(in_process_cpu(Path(tmp), blocks, term.heapsize, n, len(inproc)))

        console.start()
        term = console.term
        try:
            for name, value in PARAMS.items():
                term.service(f"param {name} {value}")
            term.service("net up")
            now = int(time.time())
            for i, name in enumerate(CARDS):
                console.new_card(name, f"04be4c{i + 1:02x}", "staff", 9_000_000, now - 86400, now + 86400 * 365)
            sell(term, console, 20)  # warm up: files open, GC settled
            own_cpu()  # three runs spread over the benchmark: a busy spell of this shared machine
            term.service("stats reset")
            pid = term.pid
            (user0, sys0), wall0 = cpu_times(pid), time.monotonic()
            sell(term, console, n)
            (user1, sys1), wall1 = cpu_times(pid), time.monotonic()
            cpu0, cpu1 = user0 + sys0, user1 + sys1
            sales = term.stats()
            gone = removal_poll_commands(term, console)
            line_cpu, poll_cpu = cpu_per_line(term, pid, "cancel"), cpu_per_line(term, pid, "poll", "amount 100")
            term.send("cancel")
            term.service("stats probe")
            term.service("stats reset")
            sell(term, console, n)
            probe = term.stats()
            own_cpu()
            term.service("stats noprobe")
            term.service("stats cpu")  # where the CPU goes: reader driver or the rest
            term.service("stats reset")
            sell(term, console, n)
            split = term.stats()
            own_cpu()
        finally:
            console.close()
    if sales["sales"] != n or probe["sales"] != n:
        raise SystemExit(f"expected {n} sales per pass, counted {sales['sales']} and {probe['sales']}")
    cmds = (sales["commands"] - n * gone) / n
    code = sales["code_heap"]
    budget = "code + data 64 KB" if args.heap == "auto" else "set by --heap"
    print(f"sales: {n} (PN532 emulator on a pty, firmware heap {term.heapsize}: {budget}; code {code} B)")
    user_ms, sys_ms = (user1 - user0) * 1000 / n, (sys1 - sys0) * 1000 / n
    print(f"simulator's firmware process, CPU per sale: {(cpu1 - cpu0) * 1000 / n:.2f} ms = user {user_ms:.2f} + "
          f"system {sys_ms:.2f} (the kernel's side of the pty, console pipe and journal fsync) (wall "
          f"{(wall1 - wall0) * 1000 / n:.1f} ms per sale including the console and emulator)")
    print(f"  of which: {4 * line_cpu:.2f} ms for the 4 console lines of a sale (keypad/display protocol, "
          f"{line_cpu:.3f} ms each); one empty reader poll {poll_cpu - line_cpu:.3f} ms (UART + PN532 driver)")
    poll_ms = split["poll_cpu_s"] * 1000 / n
    reader_ms = split["reader_cpu_s"] * 1000 / n
    print(f"  timed inside the firmware (third pass, time.clock summed over {2 * n} polls): polls "
          f"{poll_ms:.2f} ms per sale, of which reader driver + UART {reader_ms:.2f} ms, application + purse "
          f"+ journal {poll_ms - reader_ms:.2f} ms")
    print(f"reader commands per sale: {cmds:.1f} (+{gone} for the poll that sees the card gone); "
          f"card commands {sales['card_ios'] / n:.1f}")
    print(f"modelled card I/O per sale at 106 kbit/s: {sales['card_io_us'] / n / 1000:.1f} ms")
    print(f"heap: code {code} B; data high-water of a tap {probe['heap_high'] - code} B of {DATA_HEAP}")
    fw_ms = min(r["cpu_us_per_sale"] for r in inproc) / 1000
    fw_median_ms = min(r["median_cpu_us_per_sale"] for r in inproc) / 1000
    runs = ", ".join(f"{r['cpu_us_per_sale'] / 1000:.3f} (median {r['median_cpu_us_per_sale'] / 1000:.3f}, chip "
                     f"{r['chip_us_per_sale'] / 1000:.3f}, system {r['system_share']:.0%})" for r in inproc)
    print(f"firmware CPU per sale, emulated hardware excluded (benchmarks/pos_cpu_mpy.py: the same terminal on the "
          f"same driver, the chip in its process and its share taken off, no pty, no console): {fw_ms:.3f} ms, "
          f"fastest round of {len(inproc)} runs of 41: {runs} ms; {inproc[0]['reader_commands_per_sale']:.1f} reader "
          f"commands, {inproc[0]['alloc_bytes_per_sale']:.0f} B allocated per sale")
    floor = pty_floor()
    rt_us = floor["cpu_us_per_round_trip"]
    floor_ms = rt_us * (cmds + gone) / 1000
    print(f"pty floor (same run): a bare reader round trip over the pty costs the MicroPython process "
          f"{rt_us:.1f} us (user {floor['user_us_per_round_trip']:.1f} + system "
          f"{floor['system_us_per_round_trip']:.1f}); x {cmds + gone:.1f} reader commands = {floor_ms:.2f} ms "
          f"of every sale's CPU is the pty itself (an ESP32's UART FIFO has no such cost)")
    figures = flash_store_figures()
    print(f"blacklist lookup ({figures['blacklist_entries']} entries): {figures['blacklist_lookup_ms']} ms; "
          f"journal capacity in 2 MB: {figures['journal_capacity_records_2mb']} records")
    result = {
        "cpu_ms_per_sale": round(fw_ms, 3),
        "cpu_median_ms_per_sale": round(fw_median_ms, 3),
        "reader_commands_per_sale": round(cmds, 1),
        "modelled_io_ms_per_sale": round(sales["card_io_us"] / n / 1000, 2),
        "heap_peak_bytes": probe["heap_high"] - code,
        "heapsize_bytes": DATA_HEAP,
        "code_heap_bytes": code,
        "app_cpu_ms_per_sale": round(poll_ms - reader_ms, 3),
        "reader_cpu_ms_per_sale": round(reader_ms, 3),
        "process_cpu_ms_per_sale": round((cpu1 - cpu0) * 1000 / n, 3),
        "process_cpu_user_ms_per_sale": round(user_ms, 3),
        "process_cpu_system_ms_per_sale": round(sys_ms, 3),
        "firmware_alloc_bytes_per_sale": round(inproc[0]["alloc_bytes_per_sale"]),
        "pty_round_trip_cpu_us": round(rt_us, 1),
        "pty_floor_ms_per_sale": round(floor_ms, 3),
        "blacklist_entries": figures["blacklist_entries"],
        "blacklist_lookup_ms": figures["blacklist_lookup_ms"],
        "journal_capacity_records_2mb": figures["journal_capacity_records_2mb"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
