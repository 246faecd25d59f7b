"""The cashier console: `campuscard sim pos` as a person runs it (a real process reading
commands from stdin), the card box kept between sessions, and the console's own parsing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal_sim.console import Console, ConsoleError, cents
from terminal_sim.mifare_card import Field
from terminal_sim.pn532_emulator import PN532Emulator
from terminal_sim.terminal_process import DATA_HEAP, ensure_secrets, measure_code_heap, write_config
from tools.mpy_runtime import micropython_binary, micropython_env, mpy_cwd

ROOT = Path(__file__).resolve().parent.parent


def run_console(workspace: Path, script: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tools", "sim", "pos", "--workspace", str(workspace)],
                          input=script, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.e2e
def test_sim_pos_sells_and_keeps_the_cards_between_sessions(tmp_path: Path) -> None:
    out = run_console(tmp_path, "net up\n12.50\ntap alice\njournal\nquit\n")
    assert "[ 请刷卡 12.50元 | Tap card: 12.50 ]" in out
    assert "Paid 12.50 / Balance 87.50" in out
    assert "Record(purchase t1001#1 uid=04A1B2C3 ctr=1 amount=1250 10000->8750) signed" in out
    again = run_console(tmp_path, "cards\nbalance\ntap alice\n")  # end of input ends the session
    assert "alice    04A1B2C3       student   balance    87.50" in again
    assert "Balance 87.50" in again
    assert (tmp_path / "cards" / "alice.json").exists() and (tmp_path / "secrets.json").exists()


def test_sim_pos_help_names_the_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "tools", "sim", "pos", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0
    assert "Cashier console of a POS terminal" in proc.stdout and "--reader [pn532|mfrc522]" in proc.stdout


@pytest.mark.parametrize("text,value", [("12.50", 1250), ("12", 1200), ("0.05", 5), ("7.5", 750), (".5", 50)])
def test_cents_from_yuan(text: str, value: int) -> None:
    assert cents(text) == value


@pytest.mark.parametrize("text", ["12.505", "abc", "-1", "1.2.3", ""])
def test_cents_refuses_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(ConsoleError, match="amount must be yuan like 12.50"):
        cents(text)


def test_unknown_command_and_card_say_what_to_do(tmp_path: Path) -> None:
    console = Console(tmp_path)  # not started: these fail before reaching the firmware
    with pytest.raises(ConsoleError, match="unknown command 'fly'; `help` lists the commands"):
        console.execute("fly")
    with pytest.raises(ConsoleError, match="no card named 'zed'; `cards` lists them"):
        console.execute("tap zed")


@pytest.mark.e2e
def test_keypad_and_display_on_a_unix_socket(tmp_path: Path) -> None:
    """board_unix with ``hw.keypad`` set: the console lines go over a unix socket, not stdin."""
    field = Field()
    with PN532Emulator(field) as emu:
        ensure_secrets(tmp_path)
        write_config(tmp_path, "pn532", emu.device_path)
        doc = json.loads((tmp_path / "config.json").read_text())
        sock_path = tmp_path / "keypad.sock"
        doc["hw"]["keypad"] = str(sock_path)
        (tmp_path / "config.json").write_text(json.dumps(doc))
        heap = measure_code_heap(tmp_path) + DATA_HEAP
        proc = subprocess.Popen([micropython_binary(), "-X", f"heapsize={heap}", "-m", "firmware.main", str(tmp_path)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=micropython_env(), cwd=mpy_cwd())
        try:
            deadline = time.monotonic() + 20
            while not sock_path.exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.02)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(sock_path))
                f = s.makefile("rwb")

                def until_ready() -> list[str]:
                    lines = []
                    while (line := f.readline().decode().rstrip("\n")) != "@ready":
                        assert line, "socket closed"
                        lines.append(line)
                    return lines

                assert until_ready() == ["DISPLAY 欢迎使用 请输入金额 | Ready: enter amount"]
                f.write(b"amount 1250\n")
                f.flush()
                assert until_ready() == ["DISPLAY 请刷卡 12.50元 | Tap card: 12.50"]
                f.write(b"quit\n")
                f.flush()
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
