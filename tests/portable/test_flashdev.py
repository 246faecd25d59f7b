"""firmware.flashdev: the block-device protocol and the power-cut model (both runtimes), and
littlefs over it (MicroPython)."""

import os

import support

from firmware import flashdev


def _file_dev(blocks=8, block_size=512):
    path = "/tmp/cc-fdev-%s.img" % support.tohex(os.urandom(6))
    return flashdev.FileBlockDev(path, block_size, blocks), path


def _devices():
    """A RAM device, then a file device (created only once the first is done with)."""
    yield flashdev.RAMBlockDev(512, 8), None
    yield _file_dev()


def _done(dev, path):
    if path:
        dev.close()
        os.remove(path)


def test_geometry_and_erased_state():
    for dev, path in _devices():
        try:
            assert dev.ioctl(4, 0) == 8 and dev.ioctl(5, 0) == 512
            assert dev.ioctl(1, 0) == 0 and dev.ioctl(3, 0) == 0
            buf = bytearray(512)
            dev.readblocks(7, buf)
            assert buf == b"\xff" * 512
        finally:
            _done(dev, path)


def test_program_at_offset_and_erase():
    for dev, path in _devices():
        try:
            dev.writeblocks(2, b"\x01\x02\x03\x04", 100)
            buf = bytearray(6)
            dev.readblocks(2, buf, 99)
            assert buf == b"\xff\x01\x02\x03\x04\xff", support.tohex(buf)
            assert dev.ioctl(6, 2) == 0
            dev.readblocks(2, buf, 99)
            assert buf == b"\xff" * 6
            assert (dev.ops, dev.programmed) == (2, 4)
            support.raises(ValueError, dev.writeblocks, 2, b"\x00" * 8, 508)
            support.raises(ValueError, dev.readblocks, 8, bytearray(4))
        finally:
            _done(dev, path)


def test_simple_protocol_write_erases_each_block_first():
    for dev, path in _devices():
        try:
            dev.writeblocks(1, b"\x00" * 512, 0)
            dev.writeblocks(1, b"\xa5" * 1024)  # no offset: erase + program, two blocks
            buf = bytearray(1024)
            dev.readblocks(1, buf)
            assert buf == b"\xa5" * 1024
            assert dev.ops == 5
        finally:
            _done(dev, path)


def test_cut_program_lands_half_then_everything_is_dropped():
    for dev, path in _devices():
        try:
            dev.cut_after(1)
            dev.writeblocks(0, b"\x11" * 16, 0)  # allowed
            e = support.raises(OSError, dev.writeblocks, 0, b"\x22" * 16, 16)
            assert e.args[0] == 5  # EIO
            assert dev.dead
            dev.writeblocks(0, b"\x33" * 16, 32)  # after the cut: silently dropped
            dev.ioctl(6, 0)
            buf = bytearray(48)
            dev.readblocks(0, buf)  # reads still work
            assert buf == b"\x11" * 16 + b"\x22" * 8 + b"\xff" * 24, support.tohex(buf)
            dev.revive()
            dev.writeblocks(0, b"\x44" * 8, 40)
            dev.readblocks(0, buf)
            assert buf[40:48] == b"\x44" * 8 and buf[16:24] == b"\x22" * 8
        finally:
            _done(dev, path)


def test_cut_erase_erases_half_and_cut_without_partial_lands_nothing():
    for dev, path in _devices():
        try:
            dev.writeblocks(3, b"\x00" * 512, 0)
            dev.cut_after(0)
            support.raises(OSError, dev.ioctl, 6, 3)
            buf = bytearray(512)
            dev.readblocks(3, buf)
            assert buf[:256] == b"\xff" * 256 and buf[256:] == b"\x00" * 256
            dev.revive()
            dev.cut_after(0, False)
            support.raises(OSError, dev.writeblocks, 4, b"\x00" * 32, 0)
            dev.readblocks(4, buf)
            assert buf == b"\xff" * 512
        finally:
            _done(dev, path)


def test_file_device_keeps_its_data_across_instances():
    dev, path = _file_dev()
    try:
        dev.writeblocks(5, b"persist", 10)
        dev.close()
        dev = flashdev.FileBlockDev(path, 512, 8)
        buf = bytearray(7)
        dev.readblocks(5, buf, 10)
        assert buf == b"persist"
    finally:
        _done(dev, path)


def test_littlefs_keeps_the_old_file_when_power_fails_mid_rewrite():
    if not support.IS_MICROPYTHON:
        support.skip("needs vfs.VfsLfs2 (MicroPython)")
    dev, path = _file_dev(32)
    try:
        flashdev.format_and_mount(dev, "/fdev")
        with open("/fdev/f", "wb") as f:
            f.write(b"old contents")
        survived = 0
        for n in range(40):
            dev.cut_after(n)
            try:
                with open("/fdev/f.tmp", "wb") as f:
                    f.write(b"new contents, longer than before")
                os.rename("/fdev/f.tmp", "/fdev/f")
            except OSError:
                assert dev.dead
            dev.revive()
            flashdev.remount(dev, "/fdev")
            with open("/fdev/f", "rb") as f:
                data = f.read()
            assert data in (b"old contents", b"new contents, longer than before"), data
            if data == b"old contents":
                survived += 1
            else:
                with open("/fdev/f", "wb") as f:
                    f.write(b"old contents")
        assert 0 < survived < 40
    finally:
        flashdev.unmount("/fdev")
        _done(dev, path)
