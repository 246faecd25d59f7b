"""Block devices for littlefs on the unix port, with a power-cut injector (tests, benchmarks).

On the ESP32 the flash partition is the block device; on the unix port these stand in for
it so ``vfs.VfsLfs2`` (the same littlefs the ESP32 runs) can be mounted over RAM or over a
host file. Both speak MicroPython's extended block-device protocol: ``readblocks(n, buf,
offset)``, ``writeblocks(n, buf, offset)`` (a program, no implied erase) and ``ioctl(op,
arg)`` with ops 1..6 (init, deinit, sync, block count, block size, erase).

Power-cut model (``cut_after(n)``): every program (``writeblocks``) and every erase counts
as one operation, and ``ops`` counts them all. After ``n`` more operations the next one is
the one that the power cut interrupts. With ``partial=True`` (the default) it lands in part,
as on NOR flash that programs in address order: the first half of the bytes of an
interrupted program are written, or the first half of an interrupted erase is erased (0xFF),
the rest keeps its old content. That operation raises ``OSError(EIO)``, so the code under
test stops where the power went. From then on (``dead``) programs and erases are dropped
without error until ``revive()``: nothing more reaches the flash, and finalisers of file
objects on the dead mount cannot spill errors. Reads still work. The data persists across
``revive()``, like flash across a reboot; a fresh mount then runs littlefs's own recovery.
Erased flash reads 0xFF; a program overwrites bytes (littlefs only programs erased bytes,
so this equals NOR's 1-to-0 programming).

Usage::

    from firmware import flashdev
    dev = flashdev.RAMBlockDev(512, 40)
    flashdev.format_and_mount(dev, "/pc")
    dev.cut_after(25)            # the 26th program/erase from now is cut
    try:
        run_workload("/pc")
    except OSError:
        pass
    dev.revive()                 # "reboot": runs gc so stale open files are finalised first
    flashdev.remount(dev, "/pc")
"""

import gc

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

_EIO = const(5)
_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_ERASE = const(6)

_FULL = const(2)  # the operation lands
_PARTIAL = const(1)  # the cut one: half of it lands, then EIO
_NONE = const(0)  # the cut one: nothing lands, then EIO
_DROP = const(3)  # after the cut: nothing lands, no error


class _PowerCut:
    """Counts programs and erases and decides which one a power cut interrupts."""

    block_size = 0
    blocks = 0

    def _write(self, block, offset, buf):
        raise NotImplementedError("%s._write" % type(self).__name__)

    def _erase(self, block, length):
        raise NotImplementedError("%s._erase" % type(self).__name__)

    def _init_cut(self):
        self.ops = 0  # programs + erases since the device was created
        self.programmed = 0  # bytes programmed (that landed) since the device was created
        self.dead = False  # True from the cut until revive()
        self._left = -1  # operations still allowed before the cut; -1: no cut armed
        self._partial = True

    def cut_after(self, n, partial=True):
        """Arm a power cut: ``n`` more programs/erases succeed, the next one is cut."""
        if n < 0:
            raise ValueError("cut_after needs n >= 0, got %d" % n)
        self._left = n
        self._partial = partial
        self.dead = False

    def revive(self):
        """Reboot after a cut: finalise stale file objects (their writes still fail), then
        accept writes again. The stored data is kept."""
        gc.collect()
        self._left = -1
        self.dead = False

    def _allow(self):
        """How much of the next program/erase lands: _FULL, _PARTIAL or _NONE (then raise
        EIO), or _DROP once the power is gone."""
        if self.dead:
            return _DROP
        self.ops += 1
        if self._left < 0:
            return _FULL
        if self._left == 0:
            self.dead = True
            return _PARTIAL if self._partial else _NONE
        self._left -= 1
        return _FULL

    def _check(self, block, offset, length, span=False):
        """Range check; ``span``: the access may run on into the following blocks."""
        end = (self.blocks - block) * self.block_size if span else self.block_size
        if block < 0 or block >= self.blocks or offset < 0 or offset + length > end:
            raise ValueError("block device access out of range: block %d offset %d length %d"
                             % (block, offset, length))

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_ERASE:
            self.erase(arg)
            return 0
        if op == _IOCTL_INIT or op == _IOCTL_DEINIT or op == _IOCTL_SYNC:
            return 0
        return None

    def erase(self, block):
        """Erase one block to 0xFF (a cut erase leaves its second half untouched)."""
        self._check(block, 0, 0)
        how = self._allow()
        if how == _FULL:
            self._erase(block, self.block_size)
        elif how == _PARTIAL:
            self._erase(block, self.block_size // 2)
        if how < _FULL:
            raise OSError(_EIO)

    def writeblocks(self, block, buf, offset=None):
        """Program ``buf`` at ``offset`` in ``block``. Without an offset (the simple protocol)
        the blocks are erased first, one operation each."""
        n = len(buf)
        if offset is None:
            bs = self.block_size
            mv = memoryview(buf)
            for i in range(n // bs):
                self.erase(block + i)
                self._program(block + i, 0, mv[i * bs:(i + 1) * bs])
            return
        self._check(block, offset, n)
        how = self._allow()
        if how == _FULL:
            self._write(block, offset, buf)
            self.programmed += n
        elif how == _PARTIAL:
            self._write(block, offset, memoryview(buf)[:n // 2])
        if how < _FULL:
            raise OSError(_EIO)

    def _program(self, block, offset, buf):
        how = self._allow()
        if how == _FULL:
            self._write(block, offset, buf)
            self.programmed += len(buf)
        elif how == _PARTIAL:
            self._write(block, offset, buf[:len(buf) // 2])
        if how < _FULL:
            raise OSError(_EIO)


class RAMBlockDev(_PowerCut):
    """A flash device in RAM, one bytearray per block (so a fragmented heap can hold it;
    keep it small on a 64 KB heap: 40 blocks of 512 bytes is 20 KB)."""

    def __init__(self, block_size=4096, blocks=512):
        self.block_size = block_size
        self.blocks = blocks
        self._ff = memoryview(b"\xff" * block_size)
        self._blk = [memoryview(bytearray(self._ff)) for _ in range(blocks)]
        self._init_cut()

    def readblocks(self, block, buf, offset=0):
        n = len(buf)
        self._check(block, offset, n, True)
        if offset + n <= self.block_size:
            blk = self._blk[block]
            try:
                buf[:] = blk[offset:offset + n]
            except MemoryError:  # a finaliser closing a file on a dead mount: heap locked
                for i in range(n):
                    buf[i] = blk[offset + i]
            return
        mv = memoryview(buf)  # several blocks (the simple protocol)
        done = 0
        while done < n:
            k = min(n - done, self.block_size - offset)
            mv[done:done + k] = self._blk[block][offset:offset + k]
            done += k
            block += 1
            offset = 0

    def _write(self, block, offset, buf):
        self._blk[block][offset:offset + len(buf)] = buf

    def _erase(self, block, length):
        self._blk[block][:length] = self._ff[:length]


class FileBlockDev(_PowerCut):
    """A flash device backed by a host file (created erased if missing or of the wrong size),
    for volumes too big for the heap: it holds no more than a 256-byte buffer of 0xFF."""

    def __init__(self, path, block_size=4096, blocks=512):
        self.block_size = block_size
        self.blocks = blocks
        self._ff = memoryview(b"\xff" * min(block_size, 256))
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "w+b")
        fresh = f.seek(0, 2) != block_size * blocks
        if fresh:
            f.close()
            f = open(path, "w+b")
        self._f = f
        self._init_cut()
        if fresh:
            for b in range(blocks):
                self._erase(b, block_size)
            f.flush()

    def readblocks(self, block, buf, offset=0):
        self._check(block, offset, len(buf), True)
        f = self._f
        f.seek(block * self.block_size + offset)
        f.readinto(buf)

    def _write(self, block, offset, buf):
        f = self._f
        f.seek(block * self.block_size + offset)
        f.write(buf)

    def _erase(self, block, length):
        f = self._f
        f.seek(block * self.block_size)
        ff = self._ff
        step = len(ff)
        while length > 0:
            k = min(step, length)
            f.write(ff if k == step else ff[:k])
            length -= k

    def close(self):
        self._f.close()


def format_and_mount(dev, mountpoint, **lfs_options):
    """Make a fresh littlefs on ``dev`` and mount it at ``mountpoint``; returns the VfsLfs2."""
    import vfs

    vfs.VfsLfs2.mkfs(dev)
    return remount(dev, mountpoint, **lfs_options)


def remount(dev, mountpoint, **lfs_options):
    """Mount ``dev`` at ``mountpoint`` (unmounting whatever is there first), as at boot."""
    import vfs

    unmount(mountpoint)
    fs = vfs.VfsLfs2(dev, **lfs_options)  # type: ignore[abstract]  # the stub subclasses a bdev
    vfs.mount(fs, mountpoint)
    return fs


def unmount(mountpoint):
    """Unmount ``mountpoint`` if something is mounted there; a dead device is fine."""
    import vfs

    try:
        vfs.umount(mountpoint)
    except OSError:
        pass
