"""MySQL date/time values: parsing, day numbers, week numbers and printing, for the date/time functions.

MySQL reads a date/time argument far more liberally than Python or SQLite: any punctuation between the
parts (``2024/1/5``, ``2024.01.05``), two-digit years (``24-01-05`` is 2024, ``70-01-01`` is 1970),
compact digits (``20240105``, ``20240105103000``, the number ``20240105``), an optional ``T`` or space
before the time, fractions of a second, and zero dates (``0000-00-00``, which WordPress stores for "no
date"). TIME values may be negative and exceed 24 hours (``-838:59:59`` .. ``838:59:59``).

A parsed date/time is a ``DT`` tuple ``(year, month, day, hour, minute, second, microsecond, has_time,
fsp)`` where ``fsp`` is the number of fraction digits the text carried (MySQL prints results of constant
arguments with that precision). A TIME is a signed count of microseconds plus its fsp.

Calendar arithmetic uses MySQL's day numbers (``TO_DAYS``: 0001-01-01 is day 366), which also cover the
year 0 that Python's ``datetime`` cannot represent; the week numbering is MySQL's ``WEEK()`` algorithm
with its eight modes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

MAX_TIME_US = (838 * 3600 + 59 * 60 + 59) * 1_000_000  # TIME range is -838:59:59 .. 838:59:59
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DT(NamedTuple):
    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0
    micro: int = 0
    has_time: bool = False
    fsp: int = 0


# date, then an optional time; any punctuation separates the parts
_DATETIME_RE = re.compile(
    r"\s*(\d{1,4})[^\w\s](\d{1,2})[^\w\s](\d{1,2})"
    r"(?:(?:\s+|T)(\d{1,2})(?:[^\w\s](\d{1,2})(?:[^\w\s](\d{1,2}))?)?(?:\.(\d*))?)?\s*\Z"
)
_COMPACT_RE = re.compile(r"\s*(\d{14}|\d{12}|\d{8}|\d{6})(?:[T ]?\.(\d*))?\s*\Z")
_TIME_RE = re.compile(r"\s*(-)?\s*(?:(\d+)\s+)?(\d+):(\d{1,2})(?::(\d{1,2}))?(?:\.(\d*))?\s*\Z")
_TIME_COMPACT_RE = re.compile(r"\s*(-)?\s*(\d+)(?:\.(\d*))?\s*\Z")


_fromisoformat = dt.datetime.fromisoformat
_new = tuple.__new__


def is_leap(year: int) -> bool:
    return (year & 3) == 0 and (year % 100 != 0 or (year % 400 == 0 and year != 0))


def days_in_month(year: int, month: int) -> int:
    if month == 2 and is_leap(year):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def _year2(y: int) -> int:
    return y + 2000 if y < 70 else y + 1900


def _fraction(digits: str | None) -> tuple[int, int]:
    if not digits:
        return 0, 0
    d = digits[:6]
    return int(d.ljust(6, "0")), len(d)


def _valid(y: int, mo: int, d: int, h: int, mi: int, s: int) -> bool:
    if mo > 12 or d > 31 or h > 23 or mi > 59 or s > 59:
        return False
    return not (mo and d and d > days_in_month(y, mo))


def _from_digits(digits: str, frac: str | None) -> DT | None:
    n = len(digits)
    if n in (6, 12):
        y = _year2(int(digits[0:2]))
        rest = digits[2:]
    else:
        y = int(digits[0:4])
        rest = digits[4:]
    mo, d = int(rest[0:2]), int(rest[2:4])
    if len(rest) > 4:
        h, mi, s = int(rest[4:6]), int(rest[6:8]), int(rest[8:10])
        micro, fsp = _fraction(frac)
        has_time = True
    else:
        h = mi = s = micro = fsp = 0
        has_time = False
    if not _valid(y, mo, d, h, mi, s):
        return None
    return DT(y, mo, d, h, mi, s, micro, has_time, fsp)


def parse_datetime(value: object) -> DT | None:
    """A MySQL DATE/DATETIME value, or None when ``value`` is not one (MySQL gives NULL then)."""
    if type(value) is str:
        s = value
        n = len(s)
        # Fast path for what DATE/DATETIME columns hold: 'YYYY-MM-DD' and 'YYYY-MM-DD hh:mm:ss[.ffffff]'
        # (datetime.fromisoformat is C code and validates the calendar; zero dates take the slow path).
        if (n == 10 or n == 19 or n == 26) and s[4] == "-" and s[7] == "-" and (n == 10 or s[10] == " "):
            try:
                p = _fromisoformat(s)
            except ValueError:
                p = None
            if p is not None and p.tzinfo is None:
                if n == 10:
                    return _new(DT, (p.year, p.month, p.day, 0, 0, 0, 0, False, 0))
                return _new(
                    DT,
                    (
                        p.year,
                        p.month,
                        p.day,
                        p.hour,
                        p.minute,
                        p.second,
                        p.microsecond,
                        True,
                        6 if n == 26 else 0,
                    ),
                )
    elif type(value) is int:
        return _from_number(value)
    elif type(value) is float:
        f = value
        if f != f or f < 0 or f >= 1e14:
            return None
        whole = int(f)
        frac = repr(f).partition(".")[2] if "e" not in repr(f) else ""
        got = _from_number(whole)
        if got is None or not got.has_time or not frac.strip("0"):
            return got
        micro, fsp = _fraction(frac)
        return got._replace(micro=micro, fsp=fsp)
    elif type(value) is bytes:
        s = value.decode("utf-8", "replace")
    elif value is None:
        return None
    else:
        s = str(value)
    m = _DATETIME_RE.match(s)
    if m is not None:
        ys, mos, ds, hs, mis, ss, frac = m.groups()
        y = int(ys)
        if len(ys) <= 2:
            y = _year2(y)
        mo, d = int(mos), int(ds)
        has_time = hs is not None
        h = int(hs) if hs else 0
        mi = int(mis) if mis else 0
        sec = int(ss) if ss else 0
        micro, fsp = _fraction(frac)
        if not _valid(y, mo, d, h, mi, sec):
            return None
        return DT(y, mo, d, h, mi, sec, micro, has_time, fsp)
    m = _COMPACT_RE.match(s)
    if m is not None:
        return _from_digits(m.group(1), m.group(2))
    return None


def _from_number(n: int) -> DT | None:
    """MySQL's number -> datetime: YYMMDD, YYYYMMDD, YYMMDDhhmmss, YYYYMMDDhhmmss (0 is the zero date)."""
    if n == 0:
        return DT(0, 0, 0)
    if n < 0:
        return None
    if n < 1_000_000:  # YYMMDD, leading zeros dropped
        return _from_digits(f"{n:06d}", None)
    if n < 100_000_000:
        return _from_digits(f"{n:08d}", None)
    if n < 1_000_000_000_000:
        return _from_digits(f"{n:012d}", None)
    if n < 100_000_000_000_000:
        return _from_digits(f"{n:014d}", None)
    return None


def parse_date(value: object) -> DT | None:
    """A DATE/DATETIME whose year, month and day are all real (no zero parts)."""
    d = parse_datetime(value)
    if d is None or d.month == 0 or d.day == 0:
        return None
    return d


# ------------------------------------------------------------------------------------------- TIME


def parse_time(value: object) -> tuple[int, int] | None:
    """(signed microseconds, fsp) of a MySQL TIME value; a DATETIME gives its time of day."""
    if type(value) is int or type(value) is float:
        if abs(value) >= 10_000_000_000:
            d = parse_datetime(value)
            return None if d is None else (time_of_day_us(d), d.fsp)
        s = repr(value) if type(value) is float else str(value)
        if "e" in s:
            return None
    elif type(value) is bytes:
        s = value.decode("utf-8", "replace")
    elif value is None:
        return None
    else:
        s = value if type(value) is str else str(value)
    if len(s) >= 12 or "-" in s.lstrip()[1:] or "T" in s:
        d = parse_datetime(s)
        if d is not None:
            return time_of_day_us(d), d.fsp
    m = _TIME_RE.match(s)
    if m is not None:
        neg, days, hs, mis, ss, frac = m.groups()
        h, mi = int(hs), int(mis)
        sec = int(ss) if ss else 0
        if days:
            h += int(days) * 24
    else:
        m = _TIME_COMPACT_RE.match(s)
        if m is None:
            d = parse_datetime(s)
            return None if d is None else (time_of_day_us(d), d.fsp)
        neg, digits, frac = m.groups()
        n = int(digits)
        h, mi, sec = n // 10000, n // 100 % 100, n % 100
    if mi > 59 or sec > 59:
        return None
    micro, fsp = _fraction(frac)
    total = ((h * 60 + mi) * 60 + sec) * 1_000_000 + micro
    total = min(total, MAX_TIME_US)
    return (-total if neg else total), fsp


def time_of_day_us(d: DT) -> int:
    return ((d.hour * 60 + d.minute) * 60 + d.second) * 1_000_000 + d.micro


def render_time(us: int, fsp: int) -> str:
    neg = us < 0
    us = min(abs(us), MAX_TIME_US)
    secs, micro = divmod(us, 1_000_000)
    h, rest = divmod(secs, 3600)
    mi, s = divmod(rest, 60)
    out = f"{'-' if neg else ''}{h:02d}:{mi:02d}:{s:02d}"
    if fsp:
        out += "." + f"{micro:06d}"[:fsp]
    return out


# ------------------------------------------------------------------------------------ day numbers


def daynr(year: int, month: int, day: int) -> int:
    """MySQL's day number (TO_DAYS): 0000-01-01 is 1, 0001-01-01 is 366."""
    if year == 0 and month == 0:
        return 0
    delsum = 365 * year + 31 * (month - 1) + day
    if month <= 2:
        year -= 1
    else:
        delsum -= (month * 4 + 23) // 10
    y4 = int(year / 4)
    temp = int((int(year / 100) + 1) * 3 / 4)
    return delsum + y4 - temp


def day_number(d: DT) -> int:
    """TO_DAYS of a parsed value."""
    return daynr(d.year, d.month, d.day)


def from_daynr(n: int) -> tuple[int, int, int] | None:
    """(year, month, day) of a MySQL day number; (0, 0, 0) for days before year 1; None past 9999."""
    if n <= 365:
        return (0, 0, 0)
    if n > 3652424:
        return None
    d = dt.date.fromordinal(n - 365)
    return d.year, d.month, d.day


def weekday(dn: int, sunday_first: bool) -> int:
    """0 = first day of the week (Monday, or Sunday when ``sunday_first``)."""
    return (dn + 5 + (1 if sunday_first else 0)) % 7


def days_in_year(year: int) -> int:
    return 366 if is_leap(year) else 365


WEEK_MONDAY_FIRST = 1
WEEK_YEAR = 2
WEEK_FIRST_WEEKDAY = 4


def week_mode(mode: int) -> int:
    """WEEK()'s mode argument -> the behaviour flags above."""
    flags = mode & 7
    if not flags & WEEK_MONDAY_FIRST:
        flags ^= WEEK_FIRST_WEEKDAY
    return flags


def calc_week(d: DT, flags: int) -> tuple[int, int]:
    """(week, year that week belongs to) by MySQL's rules for the given behaviour flags."""
    dn = daynr(d.year, d.month, d.day)
    first = daynr(d.year, 1, 1)
    monday_first = bool(flags & WEEK_MONDAY_FIRST)
    week_year = bool(flags & WEEK_YEAR)
    first_weekday = bool(flags & WEEK_FIRST_WEEKDAY)
    wd = weekday(first, not monday_first)
    year = d.year
    if d.month == 1 and d.day <= 7 - wd:
        if not week_year and ((first_weekday and wd != 0) or (not first_weekday and wd >= 4)):
            return 0, year
        week_year = True
        year -= 1
        n = days_in_year(year)
        first -= n
        wd = (wd + 53 * 7 - n) % 7
    if (first_weekday and wd != 0) or (not first_weekday and wd >= 4):
        days = dn - (first + 7 - wd)
    else:
        days = dn - (first - wd)
    if week_year and days >= 52 * 7:
        wd = (wd + days_in_year(year)) % 7
        if (not first_weekday and wd < 4) or (first_weekday and wd == 0):
            return 1, year + 1
    return days // 7 + 1, year


# ------------------------------------------------------------------------------------------ output


def render_date(y: int, mo: int, d: int) -> str:
    return f"{y:04d}-{mo:02d}-{d:02d}"


def render_datetime(d: DT, fsp: int | None = None) -> str:
    """DATETIME text; ``fsp`` None prints microseconds only when there are some (6 digits)."""
    out = f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    if fsp is None:
        fsp = 6 if d.micro else 0
    if fsp:
        out += "." + f"{d.micro:06d}"[:fsp]
    return out


def render(d: DT, fsp: int | None = None) -> str:
    """A DATE when the value has no time part, else a DATETIME."""
    if not d.has_time:
        return render_date(d.year, d.month, d.day)
    return render_datetime(d, fsp)


def to_python(d: DT) -> dt.datetime | None:
    """The value as a Python datetime (None for zero dates and the year 0)."""
    if d.year < 1 or d.month == 0 or d.day == 0:
        return None
    return dt.datetime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.micro)


def from_python(p: dt.datetime, has_time: bool = True, fsp: int = 0) -> DT:
    return DT(p.year, p.month, p.day, p.hour, p.minute, p.second, p.microsecond, has_time, fsp)
