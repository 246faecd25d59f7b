"""The virtual MIFARE Classic 1K card enforces what a real card enforces."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from terminal_sim.mifare_card import (
    DEFAULT_KEY,
    KEY_A,
    KEY_B,
    AccessError,
    AuthError,
    CardRemoved,
    Field,
    MifareClassic1K,
    ValueFormatError,
    decode_access_bits,
    encode_access_bits,
    make_trailer,
    parse_value_block,
    value_block,
)

UID4 = bytes.fromhex("04a1b2c3")
UID7 = bytes.fromhex("04112233445566")
KA = bytes.fromhex("a0a1a2a3a4a5")
KB = bytes.fromhex("b0b1b2b3b4b5")
# The purse sector: data blocks 110 (key A reads + decrements, key B also writes + increments),
# trailer 011 (only key B changes keys and access bits; key B is secret).
PURSE_ACCESS = encode_access_bits([(1, 1, 0), (1, 1, 0), (1, 1, 0), (0, 1, 1)])


def purse_card(uid: bytes = UID4, balance: int = 1000) -> MifareClassic1K:
    card = MifareClassic1K(uid, name="test")
    card.set_block(4, bytes(range(16)))
    card.set_block(5, value_block(balance, 5))
    card.set_block(6, value_block(balance, 5))
    card.set_block(7, make_trailer(KA, PURSE_ACCESS, KB))
    return card


def test_purse_access_bits_are_the_well_known_value_block_config() -> None:
    assert PURSE_ACCESS.hex() == "08778f"
    assert decode_access_bits(PURSE_ACCESS) == [(1, 1, 0), (1, 1, 0), (1, 1, 0), (0, 1, 1)]


def test_access_bits_round_trip_every_combination() -> None:
    triples = [(c1, c2, c3) for c1 in (0, 1) for c2 in (0, 1) for c3 in (0, 1)]
    for conds in itertools.product(triples, repeat=4):
        raw = encode_access_bits(list(conds))
        assert decode_access_bits(raw) == list(conds), raw.hex()


def test_default_image_of_a_4_byte_uid_card() -> None:
    card = MifareClassic1K(UID4)
    assert card.block(0)[:8] == UID4 + bytes((0x04 ^ 0xA1 ^ 0xB2 ^ 0xC3, 0x08, 0x04, 0x00))
    assert card.atqa == b"\x04\x00" and card.sak == 0x08
    for sector in range(16):
        assert card.block(sector * 4 + 3).hex() == "ffffffffffffff078069ffffffffffff"
    assert card.block(1) == bytes(16) and len(card.image()) == 1024


def test_default_image_of_a_7_byte_uid_card() -> None:
    card = MifareClassic1K(UID7)
    assert card.block(0)[:10] == UID7 + b"\x08\x44\x00"
    assert card.atqa == b"\x44\x00"
    assert card.auth_uid == UID7[3:]


def test_uid_must_be_4_or_7_bytes() -> None:
    with pytest.raises(ValueError, match="UID must be 4 or 7 bytes, got 5"):
        MifareClassic1K(b"\x01\x02\x03\x04\x05")


def test_auth_with_the_right_key_reads_the_sector_only() -> None:
    card = purse_card()
    card.authenticate(4, KEY_A, KA)
    assert card.read(4) == bytes(range(16))
    assert parse_value_block(card.read(5)) == (1000, 5)
    with pytest.raises(AccessError, match="sector 2 not authenticated"):
        card.read(8)


def test_wrong_key_fails_and_drops_the_previous_authentication() -> None:
    card = purse_card()
    card.authenticate(4, KEY_A, KA)
    with pytest.raises(AuthError, match="sector 1: wrong key B"):
        card.authenticate(4, KEY_B, KA)
    with pytest.raises(AccessError, match="not authenticated"):
        card.read(4)


def test_auth_checks_the_uid_the_reader_sends() -> None:
    card = purse_card(UID7)
    card.authenticate(4, KEY_A, KA, uid=UID7[3:])
    with pytest.raises(AuthError, match="does not match"):
        card.authenticate(4, KEY_A, KA, uid=UID7[:4])


def test_key_a_reads_and_decrements_but_may_not_increment_or_write() -> None:
    card = purse_card()
    card.authenticate(5, KEY_A, KA)
    card.decrement(5, 250)
    card.transfer(5)
    assert parse_value_block(card.block(5)) == (750, 5)
    with pytest.raises(AccessError, match="key A may not increment"):
        card.increment(5, 1)
    card.authenticate(5, KEY_A, KA)
    with pytest.raises(AccessError, match="key A may not write"):
        card.write(4, bytes(16))
    assert card.block(4) == bytes(range(16))


def test_key_b_increments_and_writes() -> None:
    card = purse_card()
    card.authenticate(5, KEY_B, KB)
    card.increment(5, 500)
    card.transfer(5)
    card.write(4, b"B" * 16)
    assert parse_value_block(card.block(5)) == (1500, 5)
    assert card.block(4) == b"B" * 16


def test_trailer_reads_hide_the_keys_and_only_key_b_rewrites_it() -> None:
    card = purse_card()
    card.authenticate(7, KEY_A, KA)
    assert card.read(7) == bytes(6) + PURSE_ACCESS + b"\x69" + bytes(6)
    with pytest.raises(AccessError, match="key A may not write the trailer"):
        card.write(7, make_trailer())
    new_a = bytes.fromhex("111111111111")
    card.authenticate(7, KEY_B, KB)
    card.write(7, make_trailer(new_a, PURSE_ACCESS, KB))
    card.authenticate(4, KEY_A, new_a)
    with pytest.raises(AuthError):
        card.authenticate(4, KEY_A, KA)


def test_transport_config_key_b_is_readable_so_it_grants_nothing() -> None:
    card = MifareClassic1K(UID4)
    card.authenticate(4, KEY_A, DEFAULT_KEY)
    assert card.read(7)[10:] == DEFAULT_KEY  # key B readable with key A
    card.authenticate(4, KEY_B, DEFAULT_KEY)  # accepted ...
    with pytest.raises(AccessError, match="key B is readable"):
        card.read(4)  # ... but every access is refused


def test_inconsistent_access_bits_block_the_sector() -> None:
    card = MifareClassic1K(UID4)
    card.set_block(7, make_trailer(access=bytes.fromhex("ff0781")))
    with pytest.raises(AuthError, match="sector 1 blocked"):
        card.authenticate(4, KEY_A, DEFAULT_KEY)
    card.authenticate(8, KEY_A, DEFAULT_KEY)  # other sectors still work


def test_writing_a_bad_trailer_bricks_the_sector_as_on_a_real_card() -> None:
    card = MifareClassic1K(UID4)
    card.authenticate(7, KEY_A, DEFAULT_KEY)
    card.write(7, make_trailer(access=bytes.fromhex("000000")))
    with pytest.raises(AuthError, match="blocked"):
        card.authenticate(4, KEY_A, DEFAULT_KEY)


def test_manufacturer_block_is_read_only() -> None:
    card = MifareClassic1K(UID4)
    card.authenticate(0, KEY_A, DEFAULT_KEY)
    with pytest.raises(AccessError, match="read-only"):
        card.write(0, bytes(16))
    assert card.block(0)[:4] == UID4


def test_value_operations_need_a_valid_value_block() -> None:
    card = purse_card()
    card.authenticate(4, KEY_A, KA)
    with pytest.raises(ValueFormatError, match="block 4: not a value block"):
        card.decrement(4, 1)
    with pytest.raises(AccessError, match="not authenticated"):
        card.read(5)  # the NAK dropped the authentication
    broken = bytearray(value_block(10, 5))
    broken[4] ^= 1
    card.set_block(5, bytes(broken))
    card.authenticate(4, KEY_A, KA)
    with pytest.raises(ValueFormatError):
        card.restore(5)


def test_decrement_is_not_written_until_transfer() -> None:
    card = purse_card()
    card.authenticate(5, KEY_A, KA)
    card.decrement(5, 1)
    assert parse_value_block(card.block(5)) == (1000, 5)
    card.transfer(5)
    assert parse_value_block(card.block(5)) == (999, 5)


def test_transfer_to_another_block_carries_the_source_address_byte() -> None:
    card = purse_card()
    card.set_block(6, value_block(0, 6))
    card.authenticate(5, KEY_A, KA)
    card.decrement(5, 300)
    card.transfer(6)
    assert parse_value_block(card.block(6)) == (700, 5)
    assert parse_value_block(card.block(5)) == (1000, 5)


def test_restore_and_transfer_copy_a_value_block() -> None:
    card = purse_card()
    card.set_block(6, value_block(1, 6))
    card.authenticate(5, KEY_A, KA)
    card.restore(5)
    card.transfer(6)
    assert card.block(6) == card.block(5)


def test_transfer_needs_a_loaded_buffer_in_the_same_sector() -> None:
    card = purse_card()
    card.authenticate(5, KEY_A, KA)
    with pytest.raises(AccessError, match="empty transfer buffer"):
        card.transfer(5)
    card.authenticate(5, KEY_A, KA)
    card.decrement(5, 1)
    with pytest.raises(AccessError, match="sector 2 not authenticated"):
        card.transfer(8)


def test_value_overflow_and_amount_range_are_refused() -> None:
    card = purse_card(balance=2**31 - 10)
    card.authenticate(5, KEY_B, KB)
    with pytest.raises(ValueFormatError, match="overflow"):
        card.increment(5, 11)
    card.authenticate(5, KEY_B, KB)
    with pytest.raises(ValueFormatError, match="out of range"):
        card.increment(5, 2**31)
    card.authenticate(5, KEY_B, KB)
    card.increment(5, 9)
    card.transfer(5)
    assert parse_value_block(card.block(5)) == (2**31 - 1, 5)


def test_negative_values_are_valid_value_blocks() -> None:
    card = purse_card(balance=5)
    card.authenticate(5, KEY_A, KA)
    card.decrement(5, 20)
    card.transfer(5)
    assert parse_value_block(card.block(5)) == (-15, 5)


def test_halt_forgets_authentication_and_answers_only_wupa() -> None:
    card = purse_card()
    card.authenticate(4, KEY_A, KA)
    card.halt()
    assert not card.answers_request(wupa=False) and card.answers_request(wupa=True)
    with pytest.raises(AccessError):
        card.read(4)
    card.select()
    assert card.answers_request(wupa=False)


Step = Callable[[MifareClassic1K], object]
# A POS sale: read, debit the purse, back it up, write the journal block.
SALE: list[Step] = [
    lambda c: c.authenticate(4, KEY_B, KB),
    lambda c: c.read(4),
    lambda c: c.decrement(5, 250),
    lambda c: c.transfer(5),
    lambda c: c.restore(5),
    lambda c: c.transfer(6),
    lambda c: c.write(4, b"J" * 16),
]


@pytest.mark.parametrize("pull_at", range(len(SALE) + 1))
def test_pull_at_every_step_leaves_each_block_old_or_new(pull_at: int) -> None:
    card = purse_card()
    before = {b: card.block(b) for b in (4, 5, 6)}
    card.pull_after(pull_at)
    done = 0
    with pytest.raises(CardRemoved) if pull_at < len(SALE) else contextlib.nullcontext():
        for step in SALE:
            step(card)
            done += 1
    assert done == pull_at and card.ops == pull_at
    assert card.present == (pull_at == len(SALE))
    after_all = purse_card()
    for step in SALE:
        step(after_all)
    for b in (4, 5, 6):
        assert card.block(b) in (before[b], after_all.block(b)), b
    # Exactly the steps that completed took effect.
    assert (card.block(5) == after_all.block(5)) == (pull_at >= 4)
    assert (card.block(6) == after_all.block(6)) == (pull_at >= 6)
    assert (card.block(4) == after_all.block(4)) == (pull_at >= 7)


def test_a_pulled_card_stays_away_until_put_back_and_then_needs_auth() -> None:
    card = purse_card()
    card.authenticate(4, KEY_A, KA)
    card.pull_after(0)
    with pytest.raises(CardRemoved, match="pulled"):
        card.read(4)
    with pytest.raises(CardRemoved, match="not in the field"):
        card.authenticate(4, KEY_A, KA)
    assert not card.answers_request(wupa=True)
    card.put_back()
    with pytest.raises(AccessError, match="not authenticated"):
        card.read(4)
    card.authenticate(4, KEY_A, KA)
    assert card.read(4) == bytes(range(16))


def test_failed_operations_do_not_count_towards_the_pull() -> None:
    card = purse_card()
    card.pull_after(1)
    with pytest.raises(AuthError):
        card.authenticate(4, KEY_A, KB)
    card.authenticate(4, KEY_A, KA)
    with pytest.raises(CardRemoved):
        card.read(4)
    assert card.ops == 1


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    card = purse_card(UID7)
    path = tmp_path / "alice.json"
    card.save(path)
    back = MifareClassic1K.load(path)
    assert (back.uid, back.name, back.image()) == (card.uid, "test", card.image())


def test_field_lists_responding_cards_lowest_uid_first() -> None:
    field = Field()
    high, low = MifareClassic1K(bytes.fromhex("f0000001")), MifareClassic1K(bytes.fromhex("10000002"))
    field.place(high)
    field.place(low)
    assert field.responding() == [low, high]
    low.halt()
    assert field.responding(wupa=False) == [high]
    field.remove(high)
    assert field.cards == [low] and not high.present
    field.clear()
    assert field.cards == [] and not low.present
    field.place(low)
    assert low.present and field.responding() == [low]
