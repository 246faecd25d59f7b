"""Display texts of the POS terminal: Chinese for the device, English for the simulator console.

The application names a text by its number (``T_*``); the board's display shows the Chinese
one, and the unix board prints both so a cashier at the simulator console (and a test) can
read either. A text may hold one ``%s``, filled with the argument the application passes
(an amount already formatted by :func:`yuan`, a count, ...).

Usage::

    from firmware import texts
    texts.zh(texts.T_PAID, texts.yuan(1250))    # '支付成功 12.50元'
    texts.en(texts.T_PAID, texts.yuan(1250))    # 'Paid 12.50'
"""

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

_ZH = (
    "",
    "欢迎使用 请输入金额",
    "请刷卡 %s元",
    "请刷卡查询余额",
    "请刷卡修改密码",
    "请重新刷卡",
    "支付成功 %s元",
    "余额 %s元",
    "此卡已挂失或冻结",
    "此卡已过期",
    "此卡尚未生效",
    "本商户不受理此类卡",
    "非本系统卡",
    "卡数据校验失败 请到卡务中心",
    "余额不足 余额%s元",
    "超过单笔限额",
    "超过餐次限额",
    "超过当日累计限额",
    "超过脱机交易限额",
    "请输入交易密码",
    "密码错误 还可输入%s次",
    "密码已锁定 请到卡务中心解锁",
    "请尽快修改初始密码",
    "请输入原密码",
    "请输入新密码",
    "请再次输入新密码",
    "两次输入的新密码不一致",
    "密码修改成功",
    "密码须为4至6位数字",
    "重复刷卡 请收银员确认",
    "已确认 请刷卡",
    "请先刷原卡完成交易",
    "记录已满 请联网同步",
    "交易已取消",
    "已修复上次中断的交易",
    "充值到账 %s元",
    "金额无效",
    "读卡器故障",
    "交易未完成 请重新刷卡或取消",
    "脱机消费已达上限 请到联网终端消费",
    "时钟未设置 暂停交易",
    "密码错误次数过多 已锁定",
    "透支 %s元",
    "金额 %s元",
    "交易未完成 不能进行此操作",
    "读卡失败 请重新刷卡",
)

_EN = (
    "",
    "Ready: enter amount",
    "Tap card: %s",
    "Tap card for balance",
    "Tap card to change PIN",
    "Tap again",
    "Paid %s",
    "Balance %s",
    "Card reported lost or frozen",
    "Card expired",
    "Card not yet valid",
    "Card type not accepted here",
    "Not a campus card",
    "Card data failed verification: see the card office",
    "Insufficient balance: %s",
    "Over the per-transaction limit",
    "Over the meal-period limit",
    "Over the daily limit",
    "Over the offline limit",
    "Enter transaction PIN",
    "Wrong PIN: %s tries left",
    "PIN locked: the card office must reset it",
    "Please change your initial PIN",
    "Enter old PIN",
    "Enter new PIN",
    "Enter new PIN again",
    "New PINs do not match",
    "PIN changed",
    "PIN must be 4 to 6 digits",
    "Same card again: cashier must confirm",
    "Confirmed: tap card",
    "Tap the first card to finish its sale",
    "journal full — sync needed",
    "Cancelled",
    "Interrupted transaction repaired",
    "Top-up received: %s",
    "Invalid amount",
    "Reader fault",
    "Sale not finished: tap again or cancel",
    "Offline spending cap reached: pay at an online terminal",
    "Clock not set: sales stopped",
    "Too many wrong PINs: PIN locked",
    "Credit used: %s",
    "Amount %s",
    "Sale not finished: not now",
    "Card read failed: tap again",
)

COUNT = const(46)


def yuan(cents):
    """Cents as yuan with two decimals: ``1250 -> '12.50'``, ``-300 -> '-3.00'``."""
    if cents < 0:
        return "-%d.%02d" % ((-cents) // 100, (-cents) % 100)
    return "%d.%02d" % (cents // 100, cents % 100)


def _fill(table, tid, arg):
    text = table[tid] if 0 <= tid < COUNT else "?%d" % tid
    if arg is None or "%s" not in text:
        return text
    return text % (arg,)


def zh(tid, arg=None):
    """The Chinese text ``tid`` with its argument filled in."""
    return _fill(_ZH, tid, arg)


def en(tid, arg=None):
    """The English text ``tid`` with its argument filled in (simulator console)."""
    return _fill(_EN, tid, arg)
