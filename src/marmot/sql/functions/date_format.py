"""MySQL's format-string date functions: DATE_FORMAT, TIME_FORMAT and STR_TO_DATE.

``DATE_FORMAT`` supports every documented specifier, including the week-based ``%U %u %V %v %X %x``
(MySQL's ``WEEK()`` modes) and zero dates (``%Y`` of ``0000-00-00`` is ``0000``; a name of month 0 makes
the result NULL, as in MySQL). ``STR_TO_DATE`` follows MySQL's scanner rather than ``strptime``: spaces
before each field are skipped, numbers may have fewer digits than the field's width, parsing stops where
the string ends (missing fields are 0), trailing characters are ignored, and the result is a DATE,
DATETIME or TIME depending on which fields the *format* has; dates with a zero part are NULL (the default
``NO_ZERO_IN_DATE``/``NO_ZERO_DATE`` SQL modes). Formats are compiled once per format text (cached).
"""

from __future__ import annotations

import re
from functools import lru_cache

from marmot.sql.functions.conversions import text
from marmot.sql.functions.temporal import (
    DAY_NAMES,
    DT,
    MONTH_NAMES,
    WEEK_FIRST_WEEKDAY,
    WEEK_MONDAY_FIRST,
    WEEK_YEAR,
    calc_week,
    day_number,
    daynr,
    days_in_month,
    from_daynr,
    parse_datetime,
    parse_time,
    render,
    render_time,
    weekday,
)

# ---------------------------------------------------------------------------------- DATE_FORMAT


def _suffix(day: int) -> str:
    if 10 <= day <= 19:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


@lru_cache(maxsize=512)
def _compile_format(fmt: str) -> tuple[str, ...]:
    """The format as a tuple of literal strings and one-character specifiers prefixed by '%'."""
    out: list[str] = []
    i = 0
    lit: list[str] = []
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            if lit:
                out.append("".join(lit))
                lit = []
            out.append("%" + fmt[i + 1])
            i += 2
        else:
            lit.append(c)
            i += 1
    if lit:
        out.append("".join(lit))
    return tuple(out)


def _spec(d: DT, s: str) -> str | None:  # noqa: PLR0911, PLR0912 - one branch per specifier
    if s == "Y":
        return f"{d.year:04d}"
    if s == "m":
        return f"{d.month:02d}"
    if s == "d":
        return f"{d.day:02d}"
    if s == "H":
        return f"{d.hour:02d}"
    if s == "i":
        return f"{d.minute:02d}"
    if s in "sS":
        return f"{d.second:02d}"
    if s == "y":
        return f"{d.year % 100:02d}"
    if s == "c":
        return str(d.month)
    if s == "e":
        return str(d.day)
    if s == "f":
        return f"{d.micro:06d}"
    if s == "k":
        return str(d.hour)
    h12 = (d.hour % 24 + 11) % 12 + 1
    if s in "hI":
        return f"{h12:02d}"
    if s == "l":
        return str(h12)
    if s == "p":
        return "PM" if d.hour % 24 >= 12 else "AM"
    if s == "r":
        return f"{h12:02d}:{d.minute:02d}:{d.second:02d} {'PM' if d.hour % 24 >= 12 else 'AM'}"
    if s == "T":
        return f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    if s == "D":
        return f"{d.day}{_suffix(d.day)}"
    if s in "MbWa":
        if d.month == 0:
            return None
        if s == "M":
            return MONTH_NAMES[d.month - 1]
        if s == "b":
            return MONTH_NAMES[d.month - 1][:3]
        if d.day == 0:
            return None
        name = DAY_NAMES[weekday(day_number(d), False)]
        return name if s == "W" else name[:3]
    if s == "j":
        return f"{day_number(d) - daynr(d.year, 1, 1) + 1:03d}"
    if s == "w":
        return str(weekday(day_number(d), True))
    if s in "UuVvXx":
        if s == "U":
            return f"{calc_week(d, WEEK_FIRST_WEEKDAY)[0]:02d}"
        if s == "u":
            return f"{calc_week(d, WEEK_MONDAY_FIRST)[0]:02d}"
        flags = WEEK_YEAR | (WEEK_FIRST_WEEKDAY if s in "VX" else WEEK_MONDAY_FIRST)
        w, y = calc_week(d, flags)
        return f"{w:02d}" if s in "Vv" else f"{y:04d}"
    return s


def date_format(v: object, fmt: object) -> str | None:
    """MySQL ``DATE_FORMAT`` with every documented specifier."""
    if fmt is None:
        return None
    d = parse_datetime(v)
    if d is None:
        return None
    out = []
    for piece in _compile_format(text(fmt)):
        if piece[0] == "%" and len(piece) == 2:
            got = _spec(d, piece[1])
            if got is None:
                return None
            out.append(got)
        else:
            out.append(piece)
    return "".join(out)


_TIME_SPECS = frozenset("HkhIlisSfprT%")


def time_format(v: object, fmt: object) -> str | None:
    """TIME_FORMAT: only hour/minute/second specifiers; hours may exceed 23."""
    if v is None or fmt is None:
        return None
    t = parse_time(v)
    if t is None:
        return None
    us = abs(t[0])
    secs, micro = divmod(us, 1_000_000)
    hours, rest = divmod(secs, 3600)
    d = DT(0, 0, 0, hours, rest // 60, rest % 60, micro, True)
    out = ["-" if t[0] < 0 else ""]
    for piece in _compile_format(text(fmt)):
        if piece[0] == "%" and len(piece) == 2:
            s = piece[1]
            if s not in _TIME_SPECS:
                return None
            if s == "H":
                out.append(f"{hours:02d}")
            elif s == "k":
                out.append(str(hours))
            else:
                out.append(_spec(d, s) or "")
        else:
            out.append(piece)
    return "".join(out)


# ----------------------------------------------------------------------------------- STR_TO_DATE

_NAME_RE = re.compile(r"[A-Za-z]+")
_STR_TIME_SPECS = frozenset("SsiHhIklprTf")
_STR_DATE_SPECS = frozenset("UuVvWwXxYyabcDdejMm")
_WIDTH = {"Y": 4, "j": 3, "f": 6}


@lru_cache(maxsize=512)
def _str_format(fmt: str) -> tuple[tuple[str, ...], bool, bool, bool]:
    """(pieces with %T/%r expanded, uses date parts, uses time parts, uses %f) of a STR_TO_DATE format."""
    pieces: list[str] = []
    for piece in _compile_format(fmt):
        if piece == "%T":
            pieces.extend(("%H", ":", "%i", ":", "%s"))
        elif piece == "%r":
            pieces.extend(("%h", ":", "%i", ":", "%s", " ", "%p"))
        else:
            pieces.append(piece)
    specs = {p[1] for p in _compile_format(fmt) if p[0] == "%" and len(p) == 2}
    return tuple(pieces), bool(specs & _STR_DATE_SPECS), bool(specs & _STR_TIME_SPECS), "f" in specs


def str_to_date_type(fmt: str) -> str | None:
    """The MySQL type STR_TO_DATE(x, fmt) answers: DATE, DATETIME(6 when %f is used) or TIME."""
    _, has_date, has_time, has_frac = _str_format(fmt)
    if has_date:
        return ("DATETIME(6)" if has_frac else "DATETIME") if has_time else "DATE"
    return ("TIME(6)" if has_frac else "TIME") if has_time else None


def _num(s: str, i: int, width: int) -> tuple[int, int] | None:
    j = i
    end = min(len(s), i + width)
    while j < end and s[j].isdigit():
        j += 1
    if j == i:
        return None
    return int(s[i:j]), j


def str_to_date(value: object, fmt: object) -> str | None:  # noqa: PLR0911, PLR0912, PLR0915
    """MySQL ``STR_TO_DATE``: a DATE, DATETIME or TIME string depending on the format's fields.

    As in MySQL, spaces before each field are skipped, parsing stops when the string ends (the missing
    fields are 0) and trailing characters are ignored; a date with a zero part is NULL (NO_ZERO_IN_DATE).
    """
    if value is None or fmt is None:
        return None
    s = text(value)
    pieces, has_date, has_time, has_frac = _str_format(text(fmt))
    y = mo = d = h = mi = sec = micro = yday = 0
    pm: bool | None = None
    h12 = False
    i = 0
    n_s = len(s)
    for piece in pieces:
        while i < n_s and s[i].isspace():
            i += 1
        if i >= n_s:
            break
        if piece[0] != "%" or len(piece) != 2:
            for c in piece:
                if c.isspace():
                    continue
                while i < n_s and s[i].isspace():
                    i += 1
                if i >= n_s or s[i] != c:
                    return None
                i += 1
            continue
        spec = piece[1]
        if spec in "YymcdeHkhIlisSjfD":
            got = _num(s, i, _WIDTH.get(spec, 2))
            if got is None:
                return None
            n, j = got
            if spec == "Y":
                y = n if j - i > 2 else n + (2000 if n < 70 else 1900)
            elif spec == "y":
                y = n + (2000 if n < 70 else 1900)
            elif spec in "mc":
                mo = n
            elif spec in "deD":
                d = n
                if spec == "D":
                    j = min(j + 2, n_s)
            elif spec in "Hk":
                h = n
            elif spec in "hIl":
                h, h12 = n, True
            elif spec == "i":
                mi = n
            elif spec in "sS":
                sec = n
            elif spec == "j":
                yday = n
            else:
                micro = int(s[i:j].ljust(6, "0"))
            i = j
        elif spec in "MbWa":
            m = _NAME_RE.match(s, i)
            if m is None:
                return None
            word = m.group().lower()
            names = MONTH_NAMES if spec in "Mb" else DAY_NAMES
            full = spec in "MW"
            found = next(
                (k for k, name in enumerate(names) if word == (name.lower() if full else name[:3].lower())),
                None,
            )
            if found is None:
                return None
            if spec in "Mb":
                mo = found + 1
            i = m.end()
        elif spec == "p":
            word = s[i : i + 2].upper()
            if word not in ("AM", "PM"):
                return None
            pm = word == "PM"
            i += 2
        elif spec == "%":
            if s[i] != "%":
                return None
            i += 1
        elif spec in "UuVvXxw":
            return None  # week-based fields: not supported
        else:
            if s[i] != spec:
                return None
            i += 1
    if h12:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if pm else 0)
    elif pm is not None:
        if h > 12:
            return None
        h = h % 12 + (12 if pm else 0)
    if yday:
        ymd = from_daynr(daynr(y, 1, 1) + yday - 1)
        if ymd is None:
            return None
        y, mo, d = ymd
    if h > 23 or mi > 59 or sec > 59:
        return None
    if has_date:
        if mo == 0 or d == 0 or mo > 12 or d > days_in_month(y, mo):
            return None
        return render(DT(y, mo, d, h, mi, sec, micro, has_time), 6 if has_frac else 0)
    if not has_time:
        return None  # a format without fields is the zero date: NULL under NO_ZERO_DATE
    return render_time(((h * 60 + mi) * 60 + sec) * 1_000_000 + micro, 6 if has_frac else 0)
