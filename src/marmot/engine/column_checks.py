"""MySQL's data rules for the values a write stores: per-column checks built once per table schema.

Why here and this way: the transpiler routes each stored value through ``__marmot_chk(value, slot,
column, row)`` (``sql/value_checks.py``); this module is what that call does. For each column of a table
a *checker* is built once per schema generation from its MySQL type (``table_description.describe``):
integer ranges per type and UNSIGNED, character lengths (characters for CHAR/VARCHAR, bytes for TEXT and
binary types), DECIMAL precision, ENUM and SET members, date/time validity with NO_ZERO_DATE /
NO_ZERO_IN_DATE. A checker returns the value MySQL stores; a bad value either fails the statement (strict
mode: 1366, 1265, 1406, 1264, 1292, 1048, 1364 with MySQL's messages) or is adjusted as MySQL adjusts it
(truncated, clamped, zero, the implicit default) with a warning for SHOW WARNINGS. The statement runs
on the node that takes the write, so the captured row images — what replicas apply — are the checked
values; replicas never check again.

Messages name the column and MySQL's row number (``at row N``): the n-th row of a VALUES list, or the
ordinal of the row an INSERT ... SELECT or UPDATE is storing.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

from marmot.engine.sql_mode import ModeFlags
from marmot.engine.table_description import Column, TableDescription
from marmot.sql.functions import decimal, unsigned
from marmot.sql.functions.conversions import FunctionError

MAX_KEPT = 1024  # warnings kept per statement (MySQL's max_error_count default)
Value = int | float | str | bytes | None  # a SQLite value, as apsw passes and takes it
Warning_ = tuple[str, int, str]


class StatementChecks:
    """The state the checks of one write statement share: mode, row number, warnings."""

    __slots__ = (
        "strict",
        "null_fails",
        "mode",
        "notes",
        "row",
        "column",
        "warnings",
        "first",
        "keys",
        "dropped",
        "stored",
    )

    def __init__(
        self, mode: ModeFlags, ignore: bool, single_row: bool, warnings: list[Warning_], notes: bool = True
    ) -> None:
        self.mode = mode
        self.notes = notes  # @@sql_notes: record Note-level diagnostics
        self.strict = mode.strict and not ignore  # IGNORE turns data errors into warnings
        # NULL into NOT NULL: an error in strict mode, and for a one-row INSERT in any mode but IGNORE
        self.null_fails = self.strict or (single_row and not ignore)
        self.row = 0
        self.column = 0  # position of the column being checked (``warn`` keys its warnings by it)
        self.warnings = warnings
        self.first = len(warnings)  # this statement's warnings start here in the session's list
        self.keys: list[tuple[int, int]] = []  # (row, column) of each warning it kept, for ``in_order``
        self.dropped = 0  # warnings beyond MAX_KEPT: counted, not kept
        # column position -> the value last checked for it (what a 1062 names: ``error_details.py``)
        self.stored: dict[int, Value] = {}

    def bad(
        self, code: int, state: str, message: str, adjusted: Value, warn_code: int = 0, warn_message: str = ""
    ) -> Value:
        """Strict: fail with (code, state, message). Otherwise store ``adjusted`` and warn (by default
        with the same code and message; MySQL warns 1265 'Data truncated' where strict fails 1406)."""
        if self.strict:
            raise FunctionError(code, state, message)
        self.warn("Warning", warn_code or code, warn_message or message)
        return adjusted

    def note(self, code: int, message: str) -> None:
        if self.notes:
            self.warn("Note", code, message)

    def warn(self, level: str, code: int, message: str) -> None:
        """Keep a warning for SHOW WARNINGS — the first ``MAX_KEPT`` of them, as MySQL's max_error_count;
        the OK packet counts them all (``dropped``)."""
        if len(self.warnings) < MAX_KEPT:
            self.warnings.append((level, code, message))
            self.keys.append((self.row, self.column))
        else:
            self.dropped += 1

    def in_order(self, value_order: tuple[int, ...]) -> None:
        """Put this statement's warnings in MySQL's order: by row, then by the column's place in the
        statement (``value_order``), not in the table column order SQLite computed the values in."""
        kept = self.warnings[self.first :]
        if len(kept) < 2 or len(kept) != len(self.keys):
            return
        rank = {
            i: (row, value_order[c] if c < len(value_order) else c) for i, (row, c) in enumerate(self.keys)
        }
        order = sorted(range(len(kept)), key=rank.__getitem__)
        self.warnings[self.first :] = [kept[i] for i in order]

    def truncated(self, column: str) -> str:
        return f"Data truncated for column '{column}' at row {self.row}"

    def out_of_range(self, column: str) -> str:
        return f"Out of range value for column '{column}' at row {self.row}"


# A checker: (value, the statement's state, column name) -> the value to store (never called with NULL)
Checker = Callable[[Value, StatementChecks, str], Value]


@dataclass(frozen=True, slots=True)
class ColumnCheck:
    name: str
    nullable: bool
    implicit_default: Value  # what MySQL stores for a missing or NULL value when it does not fail
    check: Checker | None  # None: any value goes (JSON, BIT, geometry, types without a rule)


def table_checks(table: TableDescription) -> tuple[ColumnCheck, ...]:
    """One ``ColumnCheck`` per column of ``table``, in the order ``describe`` lists them (the order the
    transpiler numbered them in, ``SchemaInfo.column_facts``)."""
    return tuple(_column_check(c) for c in table.columns)


# -- NULL and missing values ----------------------------------------------------------------------------


def check_value(rule: ColumnCheck, value: Value, st: StatementChecks) -> Value:
    """The value to store for ``value`` given to column ``rule``."""
    if value is None:
        if rule.nullable:
            return None
        message = f"Column '{rule.name}' cannot be null"
        if st.null_fails:
            raise FunctionError(1048, "23000", message)
        st.warn("Warning", 1048, message)
        return rule.implicit_default
    if rule.check is None:
        return value
    return rule.check(value, st, rule.name)


def missing_value(rule: ColumnCheck, st: StatementChecks) -> Value:
    """A NOT NULL column without DEFAULT that the INSERT leaves out: 1364, or its implicit default."""
    message = f"Field '{rule.name}' doesn't have a default value"
    if st.strict:
        raise FunctionError(1364, "HY000", message)
    st.warn("Warning", 1364, message)
    return rule.implicit_default


# -- building the checker of a column -------------------------------------------------------------------

_TYPE_RE = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*(.*)$", re.DOTALL)
_INT_BITS = {"tinyint": 8, "bool": 8, "boolean": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32}
_INT_BITS["bigint"] = 64
_TEXT_BYTES = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295}
_BLOB_BYTES = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_MEMBER_RE = re.compile(r"'((?:[^'\\]|''|\\.)*)'")


def _members(args: str) -> list[str]:
    return [m.replace("''", "'").replace("\\\\", "\\") for m in _MEMBER_RE.findall(args)]


def _column_check(column: Column) -> ColumnCheck:
    m = _TYPE_RE.match(column.type.lower())
    base, args, rest = (m.group(1), m.group(2) or "", m.group(3)) if m else ("", "", "")
    if column.type.lower().startswith(("enum", "set")):
        members = _members(column.type[column.type.index("(") + 1 : column.type.rindex(")")])
        if base == "enum":
            return ColumnCheck(column.name, column.nullable, members[0] if members else "", _enum(members))
        return ColumnCheck(column.name, column.nullable, "", _set(members))
    unsigned = "unsigned" in rest.split()
    if base in _INT_BITS:
        # INT holds Marmot's AUTO_INCREMENT ids (53-bit, or 64-bit with auto_id_mode = extended) wherever
        # an application keeps them (a foreign key to an ``INT AUTO_INCREMENT`` id): it is checked against
        # BIGINT's range, a deliberate exception (docs/transpiler.md). The smaller types keep their own.
        bits = 64 if base in ("int", "integer") else _INT_BITS[base]
        lo, hi = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return ColumnCheck(column.name, column.nullable, 0, _integer(lo, hi))
    if base in ("decimal", "numeric", "dec", "fixed"):
        nums = [int(x) for x in args.split(",") if x.strip().isdigit()]
        precision = nums[0] if nums else 10
        scale = nums[1] if len(nums) > 1 else 0
        return ColumnCheck(column.name, column.nullable, 0, _decimal(precision, scale, unsigned))
    if base in ("float", "double", "real"):
        nums = [int(x) for x in args.split(",") if x.strip().isdigit()]
        single = base == "float" and (len(nums) != 1 or nums[0] <= 24)
        return ColumnCheck(
            column.name, column.nullable, 0, _float(nums if len(nums) == 2 else None, single, unsigned)
        )
    if base in ("char", "varchar", "nchar", "nvarchar", "character"):
        limit = (
            int(args) if args.strip().isdigit() else (1 if base in ("char", "nchar", "character") else 65535)
        )
        return ColumnCheck(column.name, column.nullable, "", _chars(limit))
    if base in _TEXT_BYTES:
        return ColumnCheck(column.name, column.nullable, "", _bytes(_TEXT_BYTES[base], text=True))
    if base in ("binary", "varbinary"):
        limit = int(args) if args.strip().isdigit() else 1
        return ColumnCheck(column.name, column.nullable, "", _bytes(limit, text=False))
    if base in _BLOB_BYTES:
        return ColumnCheck(column.name, column.nullable, "", _bytes(_BLOB_BYTES[base], text=False))
    if base == "date":
        return ColumnCheck(column.name, column.nullable, "0000-00-00", _temporal("date", 0))
    if base in ("datetime", "timestamp"):
        fsp = int(args) if args.strip().isdigit() else 0
        zero = "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")
        return ColumnCheck(column.name, column.nullable, zero, _temporal(base, fsp))
    if base == "time":
        fsp = int(args) if args.strip().isdigit() else 0
        return ColumnCheck(column.name, column.nullable, "00:00:00", _time(fsp))
    if base == "year":
        return ColumnCheck(column.name, column.nullable, 0, _year)
    if base == "json":
        return ColumnCheck(column.name, column.nullable, "null", None)
    return ColumnCheck(column.name, column.nullable, "" if base.endswith(("text", "blob")) else 0, None)


# -- numbers --------------------------------------------------------------------------------------------

_NUMBER_PREFIX = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_HUGE = 10**40  # beyond every integer type: clamped by the range check


def _text(value: Value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _parse_number(value: Value, st: StatementChecks, column: str, kind: str, bad_code: int) -> Decimal:
    """A string as MySQL reads a number from it: a numeric prefix (trailing garbage: 1265), none at all:
    ``bad_code`` (1366 'Incorrect integer value', for FLOAT/DOUBLE 1265), giving 0 when not strict."""
    text = _text(value)
    m = _NUMBER_PREFIX.match(text)
    if m is None:
        if bad_code == 1366:
            msg = f"Incorrect {kind} value: '{text}' for column '{column}' at row {st.row}"
            st.bad(1366, "HY000", msg, 0)
        else:
            st.bad(1265, "01000", st.truncated(column), 0)
        return Decimal(0)
    number = Decimal(m.group().strip())
    if text[m.end() :].strip():
        st.bad(1265, "01000", st.truncated(column), 0)
    return number


def _to_int(number: Decimal) -> int:
    if number.is_nan():
        return 0
    if number.is_infinite() or number.adjusted() > 38:
        return _HUGE if number > 0 else -_HUGE
    return int(number.to_integral_value(ROUND_HALF_UP))


def _integer(lo: int, hi: int) -> Checker:
    def check(value: Value, st: StatementChecks, column: str) -> Value:
        if type(value) is int:
            n = value
        elif hi > unsigned.INT64_MAX and unsigned.is_encoded(value):
            return value  # a BIGINT UNSIGNED above 2**63-1 as stored (copied from such a column)
        elif type(value) is float:
            n = _to_int(Decimal(value)) if value == value and abs(value) != float("inf") else _HUGE
        else:
            n = _to_int(_parse_number(value, st, column, "integer", 1366))
        if lo <= n <= hi:
            # SQLite integers are 64-bit signed: BIGINT UNSIGNED above that is stored as an 8-byte BLOB
            return n if n <= unsigned.INT64_MAX else unsigned.encode(n)
        return st.bad(1264, "22003", st.out_of_range(column), hi if n > hi else lo)

    return check


_DECIMAL_CONTEXT = Context(prec=100)  # DECIMAL has up to 65 digits: more than the default context's 28


def _decimal(precision: int, scale: int, unsigned: bool) -> Checker:
    quantum, top = decimal.decimal_bounds(precision, scale)
    bottom = Decimal(0).quantize(quantum) if unsigned else -top

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        if type(value) is int:
            number = Decimal(value)
        elif type(value) is float:
            if value != value or abs(value) == float("inf"):
                return st.bad(1264, "22003", st.out_of_range(column), decimal.decimal_text(top))
            number = Decimal(repr(value))
        else:
            try:
                number = _parse_number(value, st, column, "decimal", 1366)
            except InvalidOperation:
                number = Decimal(0)
        try:
            rounded = number.quantize(quantum, ROUND_HALF_UP, _DECIMAL_CONTEXT)
        except InvalidOperation:  # more digits than the context allows: far out of range
            rounded = top + 1 if number > 0 else bottom - 1
        if rounded > top or rounded < bottom:
            return st.bad(
                1264, "22003", st.out_of_range(column), decimal.decimal_text(top if rounded > top else bottom)
            )
        if rounded != number:
            st.note(1265, st.truncated(column))
        # Stored as the canonical text with the column's scale (``'2.50'``, never a REAL): exact, and
        # equal values are equal bytes (UNIQUE, digests). A zero has no sign, as in MySQL.
        return decimal.decimal_text(rounded)

    return check


_FLOAT_MAX = 3.402823466e38


def _float(digits: list[int] | None, single: bool, unsigned: bool) -> Checker:
    top = (
        float(10 ** (digits[0] - digits[1]) - 10 ** -digits[1])
        if digits
        else (_FLOAT_MAX if single else None)
    )
    bottom = 0.0 if unsigned else (-top if top is not None else None)

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        if isinstance(value, (int, float)):
            number = float(value)
        else:
            number = float(_parse_number(value, st, column, "double", 1265))
        if number != number or (top is not None and number > top) or (bottom is not None and number < bottom):
            adjusted = top if number > 0 and top is not None else bottom
            return st.bad(1264, "22003", st.out_of_range(column), adjusted if adjusted is not None else 0.0)
        if number in (float("inf"), float("-inf")):
            return st.bad(1264, "22003", st.out_of_range(column), 0.0)
        if digits:
            return round(number, digits[1])
        return value if isinstance(value, (int, float)) else number

    return check


# -- strings --------------------------------------------------------------------------------------------


def _chars(limit: int) -> Checker:
    """CHAR(n)/VARCHAR(n): n characters. Excess trailing spaces are cut with a note in any mode."""

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        if type(value) is str:
            if len(value) <= limit:
                return value
            text = value
        else:
            text = _text(value)
            if len(text) <= limit:
                return value
        kept = text[:limit]
        if not text[limit:].strip(" "):
            st.note(1265, st.truncated(column))
            return kept
        return st.bad(
            1406,
            "22001",
            f"Data too long for column '{column}' at row {st.row}",
            kept,
            1265,
            st.truncated(column),
        )

    return check


def _bytes(limit: int, text: bool) -> Checker:
    """TEXT types count bytes of UTF-8; BINARY/VARBINARY/BLOB count bytes."""

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        if isinstance(value, bytes):
            size = len(value)
        elif isinstance(value, str):
            if len(value) * 4 <= limit:
                return value  # cannot be too long whatever its characters
            size = len(value.encode("utf-8", "surrogatepass"))
        else:
            size = len(str(value))
        if size <= limit:
            return value
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        kept: Value = data[:limit]
        if text or isinstance(value, str):
            kept = data[:limit].decode("utf-8", "ignore")
        return st.bad(
            1406,
            "22001",
            f"Data too long for column '{column}' at row {st.row}",
            kept,
            1265,
            st.truncated(column),
        )

    return check


def _enum(members: list[str]) -> Checker:
    """A member (case-insensitively, trailing spaces ignored) is stored as declared; a number is the
    member's 1-based index; anything else is 1265 in strict mode and '' otherwise."""
    by_name = {m.rstrip(" ").lower(): m for m in members}

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        if isinstance(value, str):
            found = by_name.get(value.rstrip(" ").lower())
            if found is not None:
                return found
            if value.strip().isdigit():
                value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and 1 <= value <= len(members):
            return members[value - 1]
        if isinstance(value, bytes):
            found = by_name.get(value.decode("utf-8", "replace").rstrip(" ").lower())
            if found is not None:
                return found
        return st.bad(1265, "01000", st.truncated(column), "")

    return check


def _set(members: list[str]) -> Checker:
    """Comma-separated members stored in declaration order without repeats; a number is a bit mask;
    unknown members are 1265 in strict mode and dropped otherwise."""
    by_name = {m.rstrip(" ").lower(): i for i, m in enumerate(members)}

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        chosen: set[int] = set()
        bad = False
        if isinstance(value, (int, float)) and float(value).is_integer():
            mask = int(value)
            bad = mask < 0 or mask >= 1 << len(members)
            chosen = {i for i in range(len(members)) if mask >> i & 1}
        else:
            text = _text(value)
            if text == "":
                return ""
            for part in text.split(","):
                i = by_name.get(part.rstrip(" ").lower())
                if i is None:
                    bad = True
                else:
                    chosen.add(i)
        stored = ",".join(members[i] for i in sorted(chosen))
        if bad:
            return st.bad(1265, "01000", st.truncated(column), stored)
        return stored

    return check


# -- dates and times ------------------------------------------------------------------------------------

_DELIMITED = re.compile(
    r"^\s*(\d{1,4})[^\w\s](\d{1,2})[^\w\s](\d{1,2})"
    r"(?:(?:\s+|T)(\d{1,2})(?:[^\w\s](\d{1,2})(?:[^\w\s](\d{1,2}))?)?(?:\.(\d*))?)?\s*$"
)
_COMPACT = re.compile(r"^\s*(\d{6}|\d{8}|\d{12}|\d{14})(?:\.(\d*))?\s*$")
_TIMESTAMP_MIN = "1970-01-01 00:00:01"
_TIMESTAMP_MAX = "2038-01-19 03:14:07"


def _parts(text: str) -> tuple[int, int, int, int, int, int, str, bool] | None:
    """(year, month, day, hour, minute, second, fraction digits, had a time part) of a MySQL date or
    datetime literal ('2024-1-5', '24-01-05 10:00', '20240105', '20240105100000'), or None."""
    m = _DELIMITED.match(text)
    if m:
        y, mo, d, h, mi, s, frac = m.groups()
        year = int(y)
        if len(y) <= 2:
            year += 2000 if year < 70 else 1900
        return (year, int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), frac or "", h is not None)
    m = _COMPACT.match(text)
    if m:
        digits, frac = m.group(1), m.group(2) or ""
        ylen = 4 if len(digits) in (8, 14) else 2
        year = int(digits[:ylen])
        if ylen == 2:
            year += 2000 if year < 70 else 1900
        rest = digits[ylen:]
        nums = [int(rest[i : i + 2]) for i in range(0, len(rest), 2)] + [0, 0, 0]
        return (year, nums[0], nums[1], nums[2], nums[3], nums[4], frac, len(rest) > 4)
    return None


def _temporal(kind: str, fsp: int) -> Checker:
    """DATE, DATETIME(fsp), TIMESTAMP(fsp): stored in MySQL's canonical text form."""
    label = "date" if kind == "date" else "datetime"
    zero = "0000-00-00" if kind == "date" else "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")

    def bad_value(value: Value, st: StatementChecks, column: str, warn: int) -> Value:
        message = f"Incorrect {label} value: '{_text(value)}' for column '{column}' at row {st.row}"
        warn_message = st.truncated(column) if warn == 1265 else st.out_of_range(column)
        return st.bad(1292, "22007", message, zero, warn, warn_message)

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value == 0:  # the number 0 is the zero date, as '0000-00-00' is
            value = "0000-00-00"
        parts = _parts(str(value) if isinstance(value, int) else _text(value))
        if parts is None:
            return bad_value(value, st, column, 1265)
        year, month, day, hour, minute, second, frac, timed = parts
        mode = st.mode
        if hour > 23 or minute > 59 or second > 59 or month > 12 or day > 31:
            return bad_value(value, st, column, 1264)
        if year == month == day == 0:
            if mode.no_zero_date and not (hour or minute or second):
                if st.strict:
                    return bad_value(value, st, column, 1264)
                st.warn("Warning", 1264, st.out_of_range(column))
            elif hour or minute or second:
                return bad_value(value, st, column, 1264)
            return zero
        if month == 0 or day == 0:
            if mode.no_zero_in_date:
                return bad_value(value, st, column, 1264)
        elif not mode.allow_invalid_dates and day > calendar.monthrange(year, month)[1]:
            return bad_value(value, st, column, 1264)
        date_text = f"{year:04d}-{month:02d}-{day:02d}"
        if kind == "date":
            if timed and (hour or minute or second or frac.strip("0")):
                st.note(1265, st.truncated(column))
            return date_text
        micros = int((frac + "000000")[:6]) if frac else 0
        if fsp < 6 and micros:
            unit = 10 ** (6 - fsp)
            rounded = (micros + unit // 2) // unit * unit
            if rounded >= 1_000_000 and month and day:
                moment = dt.datetime(year, month, day, hour, minute, second) + dt.timedelta(seconds=1)
                year, month, day = moment.year, moment.month, moment.day
                hour, minute, second = moment.hour, moment.minute, moment.second
                date_text = f"{year:04d}-{month:02d}-{day:02d}"
                rounded = 0
            micros = min(rounded, 999_999)
        text = f"{date_text} {hour:02d}:{minute:02d}:{second:02d}"
        if fsp:
            text += "." + f"{micros:06d}"[:fsp]
        if kind == "timestamp" and not (_TIMESTAMP_MIN <= text[:19] <= _TIMESTAMP_MAX):
            return bad_value(value, st, column, 1264)
        return text

    return check


_TIME_RE = re.compile(r"^\s*(-)?(?:(\d+)\s+)?(\d{1,3}):(\d{1,2})(?::(\d{1,2}))?(?:\.(\d*))?\s*$")
_TIME_COMPACT = re.compile(r"^\s*(-)?(\d{1,7})(?:\.(\d*))?\s*$")


def _time(fsp: int) -> Checker:
    """TIME(fsp): -838:59:59 .. 838:59:59, 'D HH:MM:SS', 'HH:MM[:SS]' and 'HHMMSS' forms."""

    def check(value: Value, st: StatementChecks, column: str) -> Value:
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else _text(value)
        m = _TIME_RE.match(text)
        if m:
            sign, days, h, mi, s, frac = m.groups()
            hours, minute, second = int(h) + 24 * int(days or 0), int(mi), int(s or 0)
        elif (dated := _parts(text)) is not None and dated[7]:  # a datetime: its time of day
            sign, frac = None, dated[6]
            hours, minute, second = dated[3], dated[4], dated[5]
        else:
            c = _TIME_COMPACT.match(text)
            if c is None:
                message = f"Incorrect time value: '{text}' for column '{column}' at row {st.row}"
                return st.bad(1292, "22007", message, "00:00:00", 1265, st.truncated(column))
            sign, digits, frac = c.groups()
            digits = digits.rjust(6, "0")
            hours, minute, second = int(digits[:-4]), int(digits[-4:-2]), int(digits[-2:])
        if minute > 59 or second > 59:
            message = f"Incorrect time value: '{text}' for column '{column}' at row {st.row}"
            return st.bad(1292, "22007", message, "00:00:00", 1265, st.truncated(column))
        if hours > 838:
            clamped = ("-" if sign else "") + "838:59:59"
            return st.bad(
                1292,
                "22007",
                f"Incorrect time value: '{text}' for column '{column}' at row {st.row}",
                clamped,
                1264,
                st.out_of_range(column),
            )
        out = f"{'-' if sign and (hours or minute or second) else ''}{hours:02d}:{minute:02d}:{second:02d}"
        if fsp:
            out += "." + (frac or "").ljust(fsp, "0")[:fsp]
        return out

    return check


def _year(value: Value, st: StatementChecks, column: str) -> Value:
    """YEAR: 1901..2155 or 0; 1..69 -> 2001..2069 and 70..99 -> 1970..1999 (the string '0' is 2000)."""
    if isinstance(value, str) and value.strip() in ("0", "00"):
        return 2000
    if type(value) is int:
        n = value
    elif type(value) is float:
        n = _to_int(Decimal(value))
    else:
        n = _to_int(_parse_number(value, st, column, "integer", 1366))
    if 1 <= n <= 69:
        return 2000 + n
    if 70 <= n <= 99:
        return 1900 + n
    if n == 0 or 1901 <= n <= 2155:
        return n
    return st.bad(1264, "22003", st.out_of_range(column), 0)
