"""MySQL date/time functions with MySQL's semantics (SQLite's ``date()`` family differs).

The session registers ``FUNCTIONS`` on every connection; ``function_rewrites`` turns the parsed MySQL
calls into calls of these names (``DATE_ADD``/``+ INTERVAL``/``TIMESTAMPADD`` become
``__mysql_date_add(d, n, 'UNIT')``, ``EXTRACT(u FROM d)`` becomes ``__mysql_extract('U', d)``).

MySQL differences that matter: adding months clamps to the month's end (2024-01-31 + 1 MONTH =
2024-02-29; SQLite says 2024-03-02); a DATE stays a DATE when a date unit is added; an invalid date gives
NULL; zero dates (``0000-00-00``) have a year/month/day of 0 but no weekday; week numbers follow
``WEEK()``'s modes; TIME values may be negative or above 24 hours. The session time zone is UTC, so
``NOW()`` is UTC and ``UNIX_TIMESTAMP``/``FROM_UNIXTIME`` convert without an offset.

Results are strings (``'2024-02-29'``, ``'2024-02-29 10:00:00'``, ``'-01:00:00'``) because SQLite has no
temporal type; fractional seconds are printed when the inputs carried them (as MySQL does for constant
arguments) or when a result has microseconds.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import zoneinfo
from collections.abc import Callable
from functools import lru_cache

from marmot.sql.functions.conversions import FunctionError, round_half_away, text, to_int, to_number
from marmot.sql.functions.date_format import date_format, str_to_date, time_format
from marmot.sql.functions.temporal import (
    DAY_NAMES,
    DT,
    MAX_TIME_US,
    MONTH_NAMES,
    WEEK_YEAR,
    calc_week,
    day_number,
    daynr,
    days_in_month,
    from_daynr,
    from_python,
    parse_date,
    parse_datetime,
    parse_time,
    render_date,
    render_datetime,
    render_time,
    time_of_day_us,
    to_python,
    week_mode,
    weekday,
)

_EPOCH = dt.datetime(1970, 1, 1)
_MAX_UNIX = 32536771199  # 3001-01-18 23:59:59 UTC, MySQL 8.0.28+ on 64-bit platforms
_DATE_UNITS = frozenset({"DAY", "WEEK", "MONTH", "QUARTER", "YEAR", "YEAR_MONTH"})

# ------------------------------------------------------------------------------------------ "now"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _fsp(args: tuple[object, ...], fn: str) -> int:
    if not args or args[0] is None:
        return 0
    n = to_int(args[0])
    if n < 0 or n > 6:
        raise FunctionError(1426, "42000", f"Too-big precision {n} specified for '{fn}'. Maximum is 6.")
    return n


def now(*fsp: object) -> str:
    digits = _fsp(fsp, "now")
    return render_datetime(from_python(_utcnow()), digits)


def curdate() -> str:
    return _utcnow().strftime("%Y-%m-%d")


def curtime(*fsp: object) -> str:
    digits = _fsp(fsp, "curtime")
    p = _utcnow()
    return render_time(((p.hour * 60 + p.minute) * 60 + p.second) * 1_000_000 + p.microsecond, digits)


def unix_timestamp(*args: object) -> int | float | None:
    if not args:
        return int(time.time())
    v = args[0]
    if v is None:
        return None
    d = parse_datetime(v)
    p = to_python(d) if d is not None else None
    if d is None or p is None:
        return 0
    delta = p - _EPOCH
    secs = delta.days * 86400 + delta.seconds
    if secs < 0 or secs > _MAX_UNIX:
        return 0
    if d.micro:
        return secs + d.micro / 1_000_000
    return secs


def _fraction_digits(v: object) -> int:
    if type(v) is float:
        r = repr(v)
        if "e" in r:
            return 6
        return min(len(r.partition(".")[2].rstrip("0")), 6)
    return 0


def from_unixtime(v: object, *fmt: object) -> str | None:
    if v is None or (fmt and fmt[0] is None):
        return None
    n = to_number(v)
    if n != n or n < 0 or n >= _MAX_UNIX + 1:
        return None
    secs = int(n)
    micro = round_half_away((n - secs) * 1_000_000) if type(n) is float else 0
    if micro >= 1_000_000:
        secs, micro = secs + 1, 0
    p = _EPOCH + dt.timedelta(seconds=secs, microseconds=micro)
    out = render_datetime(from_python(p), _fraction_digits(n))
    if fmt:
        return date_format(out, fmt[0])
    return out


# ----------------------------------------------------------------------------------------- parts


def _part(fn: Callable[[DT], int]) -> Callable[[object], int | None]:
    def call(v: object) -> int | None:
        d = parse_datetime(v)
        return None if d is None else fn(d)

    return call


def _date_part(fn: Callable[[DT], int | str | None]) -> Callable[[object], object]:
    """A part that needs a real calendar date (no zero month or day)."""

    def call(v: object) -> object:
        d = parse_date(v)
        return None if d is None else fn(d)

    return call


def _time_part(fn: Callable[[int], int]) -> Callable[[object], int | None]:
    def call(v: object) -> int | None:
        t = parse_time(v)
        return None if t is None else fn(abs(t[0]))

    return call


def week(v: object, mode: object = 0) -> int | None:
    d = parse_date(v)
    if d is None or mode is None:
        return None
    return calc_week(d, week_mode(to_int(mode)))[0]


def yearweek(v: object, mode: object = 0) -> int | None:
    d = parse_date(v)
    if d is None or mode is None:
        return None
    w, y = calc_week(d, week_mode(to_int(mode)) | WEEK_YEAR)
    return y * 100 + w


def monthname(v: object) -> str | None:
    d = parse_datetime(v)
    if d is None or d.month == 0:
        return None
    return MONTH_NAMES[d.month - 1]


def last_day(v: object) -> str | None:
    d = parse_datetime(v)
    if d is None or d.month == 0:
        return None
    return render_date(d.year, d.month, days_in_month(d.year, d.month))


def from_days(v: object) -> str | None:
    if v is None:
        return None
    ymd = from_daynr(to_int(v))
    return None if ymd is None else render_date(*ymd)


def makedate(year: object, doy: object) -> str | None:
    if year is None or doy is None:
        return None
    y, n = to_int(year), to_int(doy)
    if y < 0 or y > 9999 or n <= 0:
        return None
    if y < 100:
        y += 2000 if y < 70 else 1900
    ymd = from_daynr(daynr(y, 1, 1) + n - 1)
    return None if ymd is None else render_date(*ymd)


def maketime(h: object, m: object, s: object) -> str | None:
    if h is None or m is None or s is None:
        return None
    hours, minutes = to_int(h), to_int(m)
    secs = to_number(s)
    if not 0 <= minutes <= 59 or not 0 <= secs < 60:
        return None
    us = (abs(hours) * 3600 + minutes * 60) * 1_000_000 + round_half_away(secs * 1_000_000)
    return render_time(-us if hours < 0 else us, _fraction_digits(secs))


def date_(v: object) -> str | None:
    d = parse_datetime(v)
    return None if d is None else render_date(d.year, d.month, d.day)


def time_(v: object) -> str | None:
    t = parse_time(v)
    return None if t is None else render_time(*t)


def timestamp(v: object, *add: object) -> str | None:
    d = parse_datetime(v)
    if d is None:
        return None
    fsp = d.fsp
    if add:
        t = parse_time(add[0])
        p = to_python(d)
        if t is None or p is None:
            return None
        d = _shift(p, t[0], True)
        if d is None:
            return None
        fsp = max(fsp, t[1])
    return render_datetime(d, fsp)


def _shift(p: dt.datetime, us: int, has_time: bool) -> DT | None:
    try:
        q = p + dt.timedelta(microseconds=us)
    except OverflowError:
        return None
    return from_python(q, has_time)


# ------------------------------------------------------------------------------------ arithmetic

_COMPOUND = {
    "YEAR_MONTH": ("YEAR", "MONTH"),
    "DAY_HOUR": ("DAY", "HOUR"),
    "DAY_MINUTE": ("DAY", "HOUR", "MINUTE"),
    "DAY_SECOND": ("DAY", "HOUR", "MINUTE", "SECOND"),
    "HOUR_MINUTE": ("HOUR", "MINUTE"),
    "HOUR_SECOND": ("HOUR", "MINUTE", "SECOND"),
    "MINUTE_SECOND": ("MINUTE", "SECOND"),
    "DAY_MICROSECOND": ("DAY", "HOUR", "MINUTE", "SECOND", "MICROSECOND"),
    "HOUR_MICROSECOND": ("HOUR", "MINUTE", "SECOND", "MICROSECOND"),
    "MINUTE_MICROSECOND": ("MINUTE", "SECOND", "MICROSECOND"),
    "SECOND_MICROSECOND": ("SECOND", "MICROSECOND"),
}
_US = {
    "MICROSECOND": 1,
    "SECOND": 1_000_000,
    "MINUTE": 60_000_000,
    "HOUR": 3_600_000_000,
    "DAY": 86_400_000_000,
    "WEEK": 604_800_000_000,
}
_DIGITS_RE = re.compile(r"\d+")


def _interval(amount: object, unit: str) -> tuple[int, int] | None:
    """(months, microseconds) of ``INTERVAL amount unit``; None when the unit or amount is invalid."""
    fields = _COMPOUND.get(unit)
    if fields is None:
        if unit in ("MONTH", "QUARTER", "YEAR"):
            n = to_number(amount)
            k = n if type(n) is int else round_half_away(n)
            return k * {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit], 0
        scale = _US.get(unit)
        if scale is None:
            return None
        n = to_number(amount)
        if unit == "SECOND" and type(n) is float:
            return 0, round_half_away(n * 1_000_000)
        k = n if type(n) is int else round_half_away(n)
        return 0, k * scale
    s = text(amount).strip()
    neg = s.startswith("-")
    groups = _DIGITS_RE.findall(s)
    if len(groups) > len(fields):
        return None
    values = dict.fromkeys(fields, 0)
    for name, digits in zip(fields[len(fields) - len(groups) :], groups, strict=True):
        values[name] = int(digits.ljust(6, "0")[:6]) if name == "MICROSECOND" else int(digits)
    months = values.get("YEAR", 0) * 12 + values.get("MONTH", 0)
    us = sum(values.get(name, 0) * _US[name] for name in ("DAY", "HOUR", "MINUTE", "SECOND", "MICROSECOND"))
    return (-months, -us) if neg else (months, us)


def date_add(value: object, amount: object, unit: str) -> str | None:
    """``DATE_ADD(value, INTERVAL amount unit)``; a unit written ``-UNIT`` subtracts (DATE_SUB)."""
    if amount is None:
        return None
    d = parse_date(value)
    if d is None:
        return None
    negate = unit[0] == "-"  # DATE_SUB / SUBDATE / "- INTERVAL": the rewrite marks the unit
    unit = (unit[1:] if negate else unit).upper()
    iv = _interval(amount, unit)
    if iv is None:
        return None
    months, us = iv
    if negate:
        months, us = -months, -us
    y, mo, day = d.year, d.month, d.day
    if months:  # months and years clamp to the end of the month: 01-31 + 1 MONTH = 02-29
        carry, m0 = divmod(mo - 1 + months, 12)
        y, mo = y + carry, m0 + 1
        if not 1 <= y <= 9999:
            return None
        day = min(day, days_in_month(y, mo))
    h, mi, sec, micro = d.hour, d.minute, d.second, d.micro
    if us:
        if y < 1:
            return None
        try:
            p = dt.datetime(y, mo, day, h, mi, sec, micro) + dt.timedelta(microseconds=us)
        except OverflowError:
            return None
        y, mo, day, h, mi, sec, micro = p.year, p.month, p.day, p.hour, p.minute, p.second, p.microsecond
    if not d.has_time and unit in _DATE_UNITS:
        return f"{y:04d}-{mo:02d}-{day:02d}"
    out = f"{y:04d}-{mo:02d}-{day:02d} {h:02d}:{mi:02d}:{sec:02d}"
    return f"{out}.{micro:06d}" if micro else out


def datediff(a: object, b: object) -> int | None:
    da, db = parse_date(a), parse_date(b)
    if da is None or db is None:
        return None
    return day_number(da) - day_number(db)


def _total_us(d: DT) -> int:
    return day_number(d) * 86_400_000_000 + time_of_day_us(d)


def timestampdiff(unit: str, a: object, b: object) -> int | None:
    """TIMESTAMPDIFF(unit, a, b) = b - a in whole units (truncated toward zero)."""
    da, db = parse_date(a), parse_date(b)
    if da is None or db is None:
        return None
    unit = unit.upper()
    if unit in ("MONTH", "QUARTER", "YEAR"):
        neg = _total_us(db) < _total_us(da)
        beg, end = (db, da) if neg else (da, db)
        months = (end.year - beg.year) * 12 + end.month - beg.month
        if (end.day, time_of_day_us(end)) < (beg.day, time_of_day_us(beg)):
            months -= 1
        n = months // {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit]
        return -n if neg else n
    scale = _US.get(unit)
    if scale is None:
        return None
    diff = _total_us(db) - _total_us(da)
    n = abs(diff) // scale
    return -n if diff < 0 else n


def _is_datetime_text(v: object) -> bool:
    """A TIME argument that is really a date/datetime (ADDTIME's second argument may not be one)."""
    if type(v) is str or type(v) is bytes:
        s = text(v).strip()
        return len(s) >= 10 and parse_datetime(s) is not None
    return False


def _addtime(a: object, b: object, sign: int) -> str | None:
    if a is None or b is None or _is_datetime_text(b):
        return None
    t = parse_time(b)
    if t is None:
        return None
    us = t[0] * sign
    if _is_datetime_text(a) or (type(a) is int and a >= 10_000_000_000):
        d = parse_date(a)
        p = to_python(d) if d is not None else None
        if d is None or p is None:
            return None
        out = _shift(p, us, True)
        if out is None:
            return None
        return render_datetime(out, max(d.fsp, t[1]))
    ta = parse_time(a)
    if ta is None:
        return None
    total = ta[0] + us
    total = max(-MAX_TIME_US, min(MAX_TIME_US, total))
    return render_time(total, max(ta[1], t[1]))


def addtime(a: object, b: object) -> str | None:
    return _addtime(a, b, 1)


def subtime(a: object, b: object) -> str | None:
    return _addtime(a, b, -1)


def timediff(a: object, b: object) -> str | None:
    if a is None or b is None:
        return None
    a_dt, b_dt = _is_datetime_text(a), _is_datetime_text(b)
    if a_dt != b_dt:
        return None
    if a_dt:
        da, db = parse_date(a), parse_date(b)
        if da is None or db is None:
            return None
        diff = _total_us(da) - _total_us(db)
        fsp = max(da.fsp, db.fsp)
    else:
        ta, tb = parse_time(a), parse_time(b)
        if ta is None or tb is None:
            return None
        diff = ta[0] - tb[0]
        fsp = max(ta[1], tb[1])
    return render_time(max(-MAX_TIME_US, min(MAX_TIME_US, diff)), fsp)


def time_to_sec(v: object) -> int | float | None:
    t = parse_time(v)
    if t is None:
        return None
    us = t[0]
    if us % 1_000_000 == 0:
        return us // 1_000_000
    return us / 1_000_000


def sec_to_time(v: object) -> str | None:
    if v is None:
        return None
    n = to_number(v)
    if type(n) is int:
        return render_time(max(-MAX_TIME_US, min(MAX_TIME_US, n * 1_000_000)), 0)
    us = round_half_away(n * 1_000_000)
    return render_time(max(-MAX_TIME_US, min(MAX_TIME_US, us)), _fraction_digits(n))


# ------------------------------------------------------------------------------------- EXTRACT


def extract(unit: str, v: object) -> int | None:  # noqa: PLR0911
    unit = unit.upper()
    if unit in (
        "HOUR",
        "MINUTE",
        "SECOND",
        "MICROSECOND",
        "HOUR_MINUTE",
        "HOUR_SECOND",
        "MINUTE_SECOND",
        "HOUR_MICROSECOND",
        "MINUTE_MICROSECOND",
        "SECOND_MICROSECOND",
    ):
        t = parse_time(v)
        if t is None:
            return None
        sign = -1 if t[0] < 0 else 1
        secs, micro = divmod(abs(t[0]), 1_000_000)
        h, rest = divmod(secs, 3600)
        mi, s = divmod(rest, 60)
        value = {
            "HOUR": h,
            "MINUTE": mi,
            "SECOND": s,
            "MICROSECOND": micro,
            "HOUR_MINUTE": h * 100 + mi,
            "HOUR_SECOND": h * 10000 + mi * 100 + s,
            "MINUTE_SECOND": mi * 100 + s,
            "HOUR_MICROSECOND": (h * 10000 + mi * 100 + s) * 1_000_000 + micro,
            "MINUTE_MICROSECOND": (mi * 100 + s) * 1_000_000 + micro,
            "SECOND_MICROSECOND": s * 1_000_000 + micro,
        }[unit]
        return sign * value
    d = parse_datetime(v)
    if d is None:
        return None
    if unit == "YEAR":
        return d.year
    if unit == "MONTH":
        return d.month
    if unit == "DAY":
        return d.day
    if unit == "QUARTER":
        return (d.month + 2) // 3
    if unit == "WEEK":
        if d.month == 0 or d.day == 0:
            return None
        return calc_week(d, week_mode(0))[0]
    if unit == "YEAR_MONTH":
        return d.year * 100 + d.month
    hms = d.hour * 10000 + d.minute * 100 + d.second
    if unit == "DAY_HOUR":
        return d.day * 100 + d.hour
    if unit == "DAY_MINUTE":
        return d.day * 10000 + d.hour * 100 + d.minute
    if unit == "DAY_SECOND":
        return d.day * 1_000_000 + hms
    if unit == "DAY_MICROSECOND":
        return (d.day * 1_000_000 + hms) * 1_000_000 + d.micro
    return None


# ------------------------------------------------------------------------------------ CONVERT_TZ

_OFFSET_RE = re.compile(r"\s*([+-])(\d{1,2}):(\d{2})\s*\Z")
_UTC_NAMES = frozenset({"SYSTEM", "UTC", "GMT", "Z", "ETC/UTC", "UNIVERSAL", "ZULU"})
_TS_MIN = dt.datetime(1970, 1, 1, 0, 0, 1)
_TS_MAX = dt.datetime(2038, 1, 19, 3, 14, 7, 999999)


@lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo | None:
    """The zone named by a CONVERT_TZ argument: an offset, UTC/SYSTEM (the node runs in UTC) or a tz name."""
    if name.upper() in _UTC_NAMES:
        return dt.UTC
    m = _OFFSET_RE.match(name)
    if m is not None:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        if int(m.group(3)) > 59 or minutes > 14 * 60 or (m.group(1) == "-" and minutes > 13 * 60 + 59):
            return None
        return dt.timezone(dt.timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def convert_tz(v: object, from_tz: object, to_tz: object) -> str | None:
    if v is None or from_tz is None or to_tz is None:
        return None
    d = parse_datetime(v)
    if d is None:
        return None
    src, dst = _zone(text(from_tz)), _zone(text(to_tz))
    if src is None or dst is None:
        return None
    p = to_python(d)
    if p is None:
        return render_datetime(d._replace(has_time=True), d.fsp)
    utc = p.replace(tzinfo=src).astimezone(dt.UTC).replace(tzinfo=None)
    if not _TS_MIN <= utc <= _TS_MAX:
        return render_datetime(from_python(p), d.fsp)
    out = utc.replace(tzinfo=dt.UTC).astimezone(dst).replace(tzinfo=None)
    return render_datetime(from_python(out), d.fsp)


# ---------------------------------------------------------------------------------------- periods


def _period_to_month(p: int) -> int:
    if p == 0:
        return 0
    year, month = divmod(p, 100)
    if year < 70:
        year += 2000
    elif year < 100:
        year += 1900
    return year * 12 + month - 1


def _month_to_period(m: int) -> int:
    if m == 0:
        return 0
    year, month = divmod(m, 12)
    if year < 100:
        year += 2000 if year < 70 else 1900
    return year * 100 + month + 1


def period_add(p: object, n: object) -> int | None:
    if p is None or n is None:
        return None
    return _month_to_period(_period_to_month(to_int(p)) + to_int(n))


def period_diff(a: object, b: object) -> int | None:
    if a is None or b is None:
        return None
    return _period_to_month(to_int(a)) - _period_to_month(to_int(b))


# name -> (callable, number of args (-1 = any), deterministic)
FUNCTIONS: dict[str, tuple[Callable[..., object], int, bool]] = {
    "__MYSQL_DATE_ADD": (date_add, 3, True),
    "__mysql_date": (date_, 1, True),
    "__mysql_time": (time_, 1, True),
    "__mysql_timestamp": (timestamp, -1, True),
    "__mysql_timediff": (timediff, 2, True),
    "__mysql_timestampdiff": (timestampdiff, 3, True),
    "__mysql_extract": (extract, 2, True),
    "__mysql_now": (now, -1, False),
    "__mysql_curtime": (curtime, -1, False),
    "NOW": (now, -1, False),
    "SYSDATE": (now, -1, False),
    "LOCALTIME": (now, -1, False),
    "LOCALTIMESTAMP": (now, -1, False),
    "UTC_TIMESTAMP": (now, -1, False),
    "CURDATE": (curdate, 0, False),
    "UTC_DATE": (curdate, 0, False),
    "CURTIME": (curtime, -1, False),
    "UTC_TIME": (curtime, -1, False),
    "UNIX_TIMESTAMP": (unix_timestamp, -1, False),
    "FROM_UNIXTIME": (from_unixtime, -1, True),
    "DATE_FORMAT": (date_format, 2, True),
    "TIME_FORMAT": (time_format, 2, True),
    "STR_TO_DATE": (str_to_date, 2, True),
    "DATEDIFF": (datediff, 2, True),
    "LAST_DAY": (last_day, 1, True),
    "YEAR": (_part(lambda d: d.year), 1, True),
    "MONTH": (_part(lambda d: d.month), 1, True),
    "DAY": (_part(lambda d: d.day), 1, True),
    "DAYOFMONTH": (_part(lambda d: d.day), 1, True),
    "QUARTER": (_part(lambda d: (d.month + 2) // 3), 1, True),
    "HOUR": (_time_part(lambda us: us // 3_600_000_000), 1, True),
    "MINUTE": (_time_part(lambda us: us // 60_000_000 % 60), 1, True),
    "SECOND": (_time_part(lambda us: us // 1_000_000 % 60), 1, True),
    "MICROSECOND": (_time_part(lambda us: us % 1_000_000), 1, True),
    "DAYOFWEEK": (_date_part(lambda d: weekday(day_number(d), True) + 1), 1, True),
    "WEEKDAY": (_date_part(lambda d: weekday(day_number(d), False)), 1, True),
    "DAYOFYEAR": (_date_part(lambda d: day_number(d) - daynr(d.year, 1, 1) + 1), 1, True),
    "DAYNAME": (_date_part(lambda d: DAY_NAMES[weekday(day_number(d), False)]), 1, True),
    "TO_DAYS": (_date_part(day_number), 1, True),
    "WEEKOFYEAR": (_date_part(lambda d: calc_week(d, week_mode(3))[0]), 1, True),
    "WEEK": (week, -1, True),
    "YEARWEEK": (yearweek, -1, True),
    "MONTHNAME": (monthname, 1, True),
    "FROM_DAYS": (from_days, 1, True),
    "MAKEDATE": (makedate, 2, True),
    "MAKETIME": (maketime, 3, True),
    "ADDTIME": (addtime, 2, True),
    "SUBTIME": (subtime, 2, True),
    "TIME_TO_SEC": (time_to_sec, 1, True),
    "SEC_TO_TIME": (sec_to_time, 1, True),
    "CONVERT_TZ": (convert_tz, 3, True),
    "PERIOD_ADD": (period_add, 2, True),
    "PERIOD_DIFF": (period_diff, 2, True),
}
