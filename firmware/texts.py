"""Display texts of the POS and door terminals: Chinese for the device, English for the simulator console.

The application names a text by its number (``T_*``); the board's display shows the Chinese
one, and the unix board prints both so a cashier at the simulator console (and a test) can
read either. A text may hold one ``%s``, filled with the argument the application passes:
an amount as an int of cents (shown as yuan), or a str (a count, ...).

Usage::

    from firmware import texts
    texts.zh(texts.T_PAID, 1250)                # '支付成功 12.50元'
    texts.en(texts.T_PAID, 1250)                # 'Paid 12.50'
    texts.text_into(line, texts.EN, texts.T_PAID, 1250)   # appends b'Paid 12.50' to a bytearray
"""

try:
    import micropython
except ImportError:
    from protocol import compat as micropython  # type: ignore[no-redef]  # CPython: native() is the identity

from array import array

try:
    from micropython import const
except ImportError:
    from protocol.compat import const

T_NONE = const(0)
T_READY = const(1)
T_TAP_CARD = const(2)
T_TAP_BALANCE = const(3)
T_TAP_PIN_CHANGE = const(4)
T_TAP_AGAIN = const(5)
T_PAID = const(6)
T_BALANCE = const(7)
T_BLACKLISTED = const(8)
T_EXPIRED = const(9)
T_NOT_YET_VALID = const(10)
T_TYPE_REFUSED = const(11)
T_NOT_CAMPUS_CARD = const(12)
T_CARD_FORGED = const(13)
T_INSUFFICIENT = const(14)
T_OVER_TXN = const(15)
T_OVER_MEAL = const(16)
T_OVER_DAY = const(17)
T_OVER_OFFLINE = const(18)
T_ENTER_PIN = const(19)
T_WRONG_PIN = const(20)
T_PIN_LOCKED = const(21)
T_CHANGE_INITIAL_PIN = const(22)
T_ENTER_OLD_PIN = const(23)
T_ENTER_NEW_PIN = const(24)
T_REPEAT_NEW_PIN = const(25)
T_PIN_MISMATCH = const(26)
T_PIN_CHANGED = const(27)
T_PIN_FORMAT = const(28)
T_DOUBLE_TAP = const(29)
T_CONFIRMED = const(30)
T_FINISH_FIRST = const(31)
T_JOURNAL_FULL = const(32)
T_CANCELLED = const(33)
T_REPAIRED = const(34)
T_LOADED = const(35)
T_BAD_AMOUNT = const(36)
T_READER_FAULT = const(37)
T_SALE_PENDING = const(38)
T_OFFLINE_CAP = const(39)
T_CLOCK_NOT_SET = const(40)
T_PIN_NOW_LOCKED = const(41)
T_CREDIT = const(42)
T_AMOUNT = const(43)
T_NOT_WHILE_PENDING = const(44)
T_CARD_ERROR = const(45)
# Door terminal
T_DOOR_READY = const(46)
T_DOOR_OPEN = const(47)
T_DOOR_NOT_ALLOWED = const(48)
T_DOOR_CURFEW = const(49)
T_POWER_LOST_OPEN = const(50)
T_POWER_LOST_BATTERY = const(51)
T_POWER_RESTORED = const(52)
T_LOG_FULL_CLOSED = const(53)

# One constant per language (the literals below are joined at compile time), texts separated
# by "\n" and numbered from 0 (empty), kept as UTF-8 bytes with the offset of each text: one
# heap object instead of a tuple of 54 strings (a third of the heap), and a lookup that
# neither scans nor counts characters (str indexing is by character on MicroPython).
_ZH = (
    "\n欢迎使用 请输入金额"  # 1
    "\n请刷卡 %s元"  # 2
    "\n请刷卡查询余额"  # 3
    "\n请刷卡修改密码"  # 4
    "\n请重新刷卡"  # 5
    "\n支付成功 %s元"  # 6
    "\n余额 %s元"  # 7
    "\n此卡已挂失或冻结"  # 8
    "\n此卡已过期"  # 9
    "\n此卡尚未生效"  # 10
    "\n本商户不受理此类卡"  # 11
    "\n非本系统卡"  # 12
    "\n卡数据校验失败 请到卡务中心"  # 13
    "\n余额不足 余额%s元"  # 14
    "\n超过单笔限额"  # 15
    "\n超过餐次限额"  # 16
    "\n超过当日累计限额"  # 17
    "\n超过脱机交易限额"  # 18
    "\n请输入交易密码"  # 19
    "\n密码错误 还可输入%s次"  # 20
    "\n密码已锁定 请到卡务中心解锁"  # 21
    "\n请尽快修改初始密码"  # 22
    "\n请输入原密码"  # 23
    "\n请输入新密码"  # 24
    "\n请再次输入新密码"  # 25
    "\n两次输入的新密码不一致"  # 26
    "\n密码修改成功"  # 27
    "\n密码须为4至6位数字"  # 28
    "\n重复刷卡 请收银员确认"  # 29
    "\n已确认 请刷卡"  # 30
    "\n请先刷原卡完成交易"  # 31
    "\n记录已满 请联网同步"  # 32
    "\n交易已取消"  # 33
    "\n已修复上次中断的交易"  # 34
    "\n充值到账 %s元"  # 35
    "\n金额无效"  # 36
    "\n读卡器故障"  # 37
    "\n交易未完成 请重新刷卡或取消"  # 38
    "\n脱机消费已达上限 请到联网终端消费"  # 39
    "\n时钟未设置 暂停交易"  # 40
    "\n密码错误次数过多 已锁定"  # 41
    "\n透支 %s元"  # 42
    "\n金额 %s元"  # 43
    "\n交易未完成 不能进行此操作"  # 44
    "\n读卡失败 请重新刷卡"  # 45
    "\n请刷卡开门"  # 46
    "\n门已开 请进"  # 47
    "\n无权进入此门"  # 48
    "\n门禁时段 暂停通行"  # 49
    "\n停电 门锁已释放"  # 50
    "\n停电 电池供电 请刷卡开门"  # 51
    "\n电源已恢复"  # 52
    "\n记录已满 门禁暂停 请联网同步"  # 53
).encode()

_EN = (
    "\nReady: enter amount"  # 1
    "\nTap card: %s"  # 2
    "\nTap card for balance"  # 3
    "\nTap card to change PIN"  # 4
    "\nTap again"  # 5
    "\nPaid %s"  # 6
    "\nBalance %s"  # 7
    "\nCard reported lost or frozen"  # 8
    "\nCard expired"  # 9
    "\nCard not yet valid"  # 10
    "\nCard type not accepted here"  # 11
    "\nNot a campus card"  # 12
    "\nCard data failed verification: see the card office"  # 13
    "\nInsufficient balance: %s"  # 14
    "\nOver the per-transaction limit"  # 15
    "\nOver the meal-period limit"  # 16
    "\nOver the daily limit"  # 17
    "\nOver the offline limit"  # 18
    "\nEnter transaction PIN"  # 19
    "\nWrong PIN: %s tries left"  # 20
    "\nPIN locked: the card office must reset it"  # 21
    "\nPlease change your initial PIN"  # 22
    "\nEnter old PIN"  # 23
    "\nEnter new PIN"  # 24
    "\nEnter new PIN again"  # 25
    "\nNew PINs do not match"  # 26
    "\nPIN changed"  # 27
    "\nPIN must be 4 to 6 digits"  # 28
    "\nSame card again: cashier must confirm"  # 29
    "\nConfirmed: tap card"  # 30
    "\nTap the first card to finish its sale"  # 31
    "\njournal full — sync needed"  # 32
    "\nCancelled"  # 33
    "\nInterrupted transaction repaired"  # 34
    "\nTop-up received: %s"  # 35
    "\nInvalid amount"  # 36
    "\nReader fault"  # 37
    "\nSale not finished: tap again or cancel"  # 38
    "\nOffline spending cap reached: pay at an online terminal"  # 39
    "\nClock not set: sales stopped"  # 40
    "\nToo many wrong PINs: PIN locked"  # 41
    "\nCredit used: %s"  # 42
    "\nAmount %s"  # 43
    "\nSale not finished: not now"  # 44
    "\nCard read failed: tap again"  # 45
    "\nTap card to open"  # 46
    "\nDoor open: come in"  # 47
    "\nNo access to this door"  # 48
    "\nCurfew: no entry now"  # 49
    "\nPower lost: lock released (fail-safe)"  # 50
    "\nPower lost: on battery, tap card to open"  # 51
    "\nPower restored"  # 52
    "\nLog full: door closed until it syncs"  # 53
).encode()

COUNT = const(54)


def yuan(cents):
    """Cents as yuan with two decimals: ``1250 -> '12.50'``, ``-300 -> '-3.00'``."""
    if cents < 0:
        return "-%d.%02d" % ((-cents) // 100, (-cents) % 100)
    return "%d.%02d" % (cents // 100, cents % 100)


def _index(blob):
    """Start offsets of the ``COUNT`` texts in ``blob`` (text n starts after the n-th newline)."""
    at = array("H", bytes(2 * (COUNT + 1)))
    pos = 0
    for i in range(1, COUNT):
        pos = blob.find(b"\n", pos) + 1
        at[i] = pos
    at[COUNT] = len(blob) + 1
    return at


_ZH_AT = _index(_ZH)
_EN_AT = _index(_EN)


ZH = const(0)
EN = const(1)
_BLOBS = (_ZH, _EN)
_ATS = (_ZH_AT, _EN_AT)


_MVS = (memoryview(_ZH), memoryview(_EN))  # slices of these are views, not copies


@micropython.native
def _digits_into(buf, n):
    """Append the decimal digits of ``n`` >= 0."""
    d = 1
    while d * 10 <= n:
        d *= 10
    while d:
        buf.append(48 + n // d % 10)
        d //= 10


@micropython.native
def yuan_into(buf, cents):
    """Append ``cents`` as yuan with two decimals to the bytearray ``buf`` (no str made)."""
    if cents < 0:
        buf.append(45)  # "-"
        cents = -cents
    _digits_into(buf, cents // 100)
    buf.append(46)  # "."
    buf.append(48 + cents % 100 // 10)
    buf.append(48 + cents % 10)


@micropython.native
def text_into(buf, lang, tid, arg=None):
    """Append text ``tid`` of ``lang`` (``ZH``/``EN``) to the bytearray ``buf``, its ``%s``
    filled with ``arg``: an int is an amount in cents (shown as yuan), a str goes as it is.
    Nothing is decoded or formatted through a str: the display line of every tap is built so."""
    if not 0 <= tid < COUNT:
        buf.extend(b"?")
        _digits_into(buf, tid)
        return
    if not tid:
        return
    blob = _BLOBS[lang]
    at = _ATS[lang]
    start = at[tid]
    end = at[tid + 1] - 1
    mark = blob.find(b"%s", start, end) if arg is not None else -1
    mv = _MVS[lang]
    if mark < 0:
        buf.extend(mv[start:end])
        return
    buf.extend(mv[start:mark])
    if isinstance(arg, int):
        yuan_into(buf, arg)
    else:
        buf.extend(arg.encode())
    buf.extend(mv[mark + 2:end])


def _fill(lang, tid, arg):
    buf = bytearray()
    text_into(buf, lang, tid, arg)
    return bytes(buf).decode()


def zh(tid, arg=None):
    """The Chinese text ``tid`` with its argument filled in (an int: cents, shown as yuan)."""
    return _fill(ZH, tid, arg)


def en(tid, arg=None):
    """The English text ``tid`` with its argument filled in (simulator console)."""
    return _fill(EN, tid, arg)
