"""MySQL date/time functions with MySQL's semantics (SQLite's ``date()`` modifiers differ).

The transpiler rewrites ``DATE_ADD/DATE_SUB/ADDDATE/SUBDATE/d + INTERVAL n unit`` into
``__mysql_date_add(d, n, 'UNIT')`` and keeps ``DATE_FORMAT``/``STR_TO_DATE`` with MySQL format strings,
evaluated here. MySQL differences that matter: adding months clamps to the month's end
(2024-01-31 + 1 MONTH = 2024-02-29; SQLite says 2024-03-02), a DATE stays a DATE when a date unit is
added, and an invalid date gives NULL.
"""

from __future__ import annotations

import calendar
import datetime as dt

_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y%m%d%H%M%S", "%Y%m%d")
_DATE_UNITS = {"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def parse(value: object) -> tuple[dt.datetime, bool] | None:
    """(datetime, had_time) for a MySQL date/datetime value, None when it is not one."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (int, float)):
        value = str(int(value))
    text = str(value).strip()
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(text, fmt), ("%H" in fmt)
        except ValueError:
            continue
    return None


def _render(d: dt.datetime, with_time: bool) -> str:
    if not with_time:
        return d.strftime("%Y-%m-%d")
    if d.microsecond:
        return d.strftime("%Y-%m-%d %H:%M:%S.%f")
    return d.strftime("%Y-%m-%d %H:%M:%S")


def add_months(d: dt.datetime, months: int) -> dt.datetime:
    y, m = divmod(d.month - 1 + months, 12)
    year = d.year + y
    if not 1 <= year <= 9999:
        raise OverflowError
    day = min(d.day, calendar.monthrange(year, m + 1)[1])
    return d.replace(year=year, month=m + 1, day=day)


def date_add(value: object, amount: object, unit: str) -> str | None:
    """``DATE_ADD(value, INTERVAL amount unit)``; a negative amount subtracts."""
    parsed = parse(value)
    if parsed is None or amount is None:
        return None
    d, had_time = parsed
    unit = unit.upper()
    try:
        n = float(amount) if unit in ("SECOND", "MICROSECOND") else int(float(amount))  # type: ignore[arg-type]
        if unit in ("MONTH", "QUARTER", "YEAR"):
            d = add_months(d, int(n) * {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit])
        else:
            seconds = {"MICROSECOND": 1e-6, "SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400,
                       "WEEK": 604800}.get(unit)
            if seconds is None:
                return None
            d = d + dt.timedelta(seconds=n * seconds)
    except (OverflowError, ValueError, TypeError):
        return None
    return _render(d, had_time or unit not in _DATE_UNITS)


def _week(d: dt.datetime, sunday_first: bool, mode_iso: bool) -> tuple[int, int]:
    if mode_iso:
        iso = d.isocalendar()
        return iso[0], iso[1]
    first = dt.datetime(d.year, 1, 1)
    offset = (first.weekday() + 1) % 7 if sunday_first else first.weekday()
    return d.year, (d.timetuple().tm_yday + offset - 1) // 7


def date_format(value: object, fmt: object) -> str | None:
    """MySQL ``DATE_FORMAT`` with every documented specifier."""
    parsed = parse(value)
    if parsed is None or fmt is None:
        return None
    d = parsed[0]
    f = str(fmt)
    out: list[str] = []
    i = 0
    while i < len(f):
        c = f[i]
        if c != "%" or i + 1 == len(f):
            out.append(c)
            i += 1
            continue
        s = f[i + 1]
        i += 2
        h12 = d.hour % 12 or 12
        table = {
            "a": _DAYS[d.weekday()][:3], "b": _MONTHS[d.month - 1][:3], "c": str(d.month),
            "D": f"{d.day}{_suffix(d.day)}", "d": f"{d.day:02d}", "e": str(d.day), "f": f"{d.microsecond:06d}",
            "H": f"{d.hour:02d}", "h": f"{h12:02d}", "I": f"{h12:02d}", "i": f"{d.minute:02d}",
            "j": f"{d.timetuple().tm_yday:03d}", "k": str(d.hour), "l": str(h12), "M": _MONTHS[d.month - 1],
            "m": f"{d.month:02d}", "p": "AM" if d.hour < 12 else "PM",
            "r": f"{h12:02d}:{d.minute:02d}:{d.second:02d} {'AM' if d.hour < 12 else 'PM'}",
            "S": f"{d.second:02d}", "s": f"{d.second:02d}", "T": f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}",
            "U": f"{_week(d, True, False)[1]:02d}", "u": f"{_week(d, False, False)[1]:02d}",
            "V": f"{_week(d, True, True)[1]:02d}", "v": f"{_week(d, False, True)[1]:02d}",
            "W": _DAYS[d.weekday()], "w": str((d.weekday() + 1) % 7), "X": str(_week(d, True, True)[0]),
            "x": str(_week(d, False, True)[0]), "Y": f"{d.year:04d}", "y": f"{d.year % 100:02d}", "%": "%",
        }
        out.append(table.get(s, s))
    return "".join(out)


def _suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


_STRPTIME = {"Y": "%Y", "y": "%y", "m": "%m", "c": "%m", "d": "%d", "e": "%d", "H": "%H", "k": "%H",
             "h": "%I", "I": "%I", "l": "%I", "i": "%M", "s": "%S", "S": "%S", "f": "%f", "p": "%p",
             "b": "%b", "M": "%B", "a": "%a", "W": "%A", "j": "%j", "T": "%H:%M:%S", "r": "%I:%M:%S %p", "%": "%%"}


def str_to_date(value: object, fmt: object) -> str | None:
    """MySQL ``STR_TO_DATE``: a DATE, DATETIME or TIME string depending on the format's fields."""
    if value is None or fmt is None:
        return None
    f = str(fmt)
    py = []
    i = 0
    has_date = has_time = False
    while i < len(f):
        if f[i] == "%" and i + 1 < len(f):
            spec = f[i + 1]
            py.append(_STRPTIME.get(spec, spec))
            has_date |= spec in "YymcdejbMaWj"
            has_time |= spec in "HkhIlisSfTrp"
            i += 2
        else:
            py.append(f[i].replace("%", "%%"))
            i += 1
    try:
        d = dt.datetime.strptime(str(value), "".join(py))
    except ValueError:
        return None
    if has_date and has_time:
        return _render(d, True)
    if has_time:
        return d.strftime("%H:%M:%S")
    return d.strftime("%Y-%m-%d")


def datediff(a: object, b: object) -> int | None:
    pa, pb = parse(a), parse(b)
    if pa is None or pb is None:
        return None
    return (pa[0].date() - pb[0].date()).days


def date_part(part: str):  # type: ignore[no-untyped-def]
    """YEAR(d), MONTH(d), ... as SQLite functions."""

    def fn(value: object) -> int | None:
        p = parse(value)
        if p is None:
            return None
        d = p[0]
        if part == "WEEKDAY":
            return d.weekday()
        if part == "DAYOFWEEK":
            return (d.weekday() + 1) % 7 + 1
        if part == "DAYOFYEAR":
            return d.timetuple().tm_yday
        if part == "QUARTER":
            return (d.month - 1) // 3 + 1
        return getattr(d, {"DAYOFMONTH": "day"}.get(part, part.lower()))

    return fn


def last_day(value: object) -> str | None:
    p = parse(value)
    if p is None:
        return None
    d = p[0]
    return d.replace(day=calendar.monthrange(d.year, d.month)[1]).strftime("%Y-%m-%d")


FUNCTIONS = {
    "__MYSQL_DATE_ADD": (date_add, 3, True),
    "DATE_FORMAT": (date_format, 2, True),
    "STR_TO_DATE": (str_to_date, 2, True),
    "DATEDIFF": (datediff, 2, True),
    "LAST_DAY": (last_day, 1, True),
    **{name: (date_part(name), 1, True) for name in
       ("YEAR", "MONTH", "DAY", "DAYOFMONTH", "HOUR", "MINUTE", "SECOND", "WEEKDAY", "DAYOFWEEK", "DAYOFYEAR",
        "QUARTER")},
}
