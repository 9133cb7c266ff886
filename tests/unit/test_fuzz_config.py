"""Property-based fuzzing of the config loader (Hypothesis): TOML text with random and mutated keys and values.

The contract (config.py): ``load_config`` returns a ``Config`` or raises ``ConfigError`` and nothing
else, whatever the file holds; every message starts with the dotted key it is about (or the file's path
for a file that is no TOML); a value of the wrong type for a key is reported under exactly that key, an
unknown key under its own name. ``marmot --config`` prints that message and exits 2 without a traceback
(checked on a few examples with the real CLI).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from marmot.config import Config, ConfigError, load_config
from marmot.config_schema import _all_keys, _list_item, _lookup
from tests.support import REPO
from tests.support.fuzzing import mutated, node_examples

# Scalar keys of the schema (not sections, not lists of tables), with their type.
SCALARS = sorted(
    k
    for k in _all_keys()
    if "[]" not in k
    and (t := _lookup(k)) is not None
    and (t[0] in (int, float, str, bool) or _list_item(t[0]) is str)
)


def toml_value(v: Any) -> str:
    """``v`` as a TOML value (strings via JSON's escapes, which TOML's basic strings share)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")  # TOML wants DEL escaped
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{"
            + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(x)}" for k, x in v.items())
            + "}"
        )
    raise TypeError(v)


scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from((0, 1, -1, 65535, 65536, 2**31, 0o660)),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(("", " ", "QUORUM", "json", "127.0.0.1:1", "host:0", ":", "0660", "0o999")),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(("a", "name", "port")), inner, max_size=2)
    ),
    max_leaves=5,
)
unknown_names = st.sampled_from(
    ("nodeid", "mysql.prot", "cluster.grpc_prot", "foo", "mysql.users_x", "logging.verbose.x")
)


def _load(text: str) -> tuple[Config | None, ConfigError | None, Path]:
    with tempfile.NamedTemporaryFile(
        "w", suffix=".toml", delete=False, encoding="utf-8", errors="surrogatepass"
    ) as f:
        f.write(text)
    path = Path(f.name)
    try:
        return load_config(path, env={}, refuse_unbuilt=True), None, path
    except ConfigError as err:
        return None, err, path
    finally:
        path.unlink()


@given(st.dictionaries(st.sampled_from(SCALARS) | unknown_names, values, max_size=6))
@example({"mysql.port": "3306"})
@example({"mysql.unix_socket_perm": 99999999999})
def test_random_keys_and_values_load_or_name_their_key(entries: dict[str, Any]) -> None:
    text = "".join(f"{k} = {toml_value(v)}\n" for k, v in entries.items())
    cfg, err, path = _load(text)
    if err is None:
        assert isinstance(cfg, Config)
        return
    roots = {k.split(".")[0] for k in entries}
    for message in err.errors:
        key = message.split(": ", 1)[0]
        # the file (not TOML), a key of the input (or inside it), or a schema key a cross-key rule names
        plain = re.sub(r"\[\d+\]", "", key)
        assert key == str(path) or plain.split(".")[0] in roots or _lookup(plain) is not None, (message, text)


@given(st.sampled_from(SCALARS), st.data())
def test_a_wrong_type_is_reported_under_its_key(key: str, data: st.DataObject) -> None:
    tp = _lookup(key)[0]
    wrong = {
        int: st.text(max_size=4) | st.floats(allow_nan=False) | st.booleans(),
        float: st.text(max_size=4) | st.booleans(),
        str: st.integers() | st.booleans() | st.floats(allow_nan=False),
        bool: st.integers() | st.text(max_size=4),
    }.get(tp, st.integers() | st.booleans())
    value = data.draw(wrong)
    cfg, err, _ = _load(f"{key} = {toml_value(value)}\n")
    if key == "mysql.unix_socket_perm" and cfg is not None:
        return  # octal digits as a string or an int in range are both accepted forms
    assert err is not None, (key, value)
    assert err.key == key, (err.errors, key, value)


@given(st.sampled_from(SCALARS), st.sampled_from(("_x", "x", "2")))
def test_an_unknown_key_is_named(key: str, suffix: str) -> None:
    _, err, _ = _load(f"{key}{suffix} = 1\n")
    assert err is not None and err.key == key + suffix and "unknown" in err.errors[0], err


SHIPPED = (REPO / "config.toml").read_text()


@given(mutated(SHIPPED.encode(), max_ops=6))
def test_mutated_shipped_config_loads_or_fails_cleanly(raw: bytes) -> None:
    with tempfile.NamedTemporaryFile("wb", suffix=".toml", delete=False) as f:
        f.write(raw)
    path = Path(f.name)
    try:
        load_config(path, env={}, refuse_unbuilt=True)
    except ConfigError as err:
        assert err.errors and all(": " in m for m in err.errors), err.errors
    finally:
        path.unlink()


@node_examples(ci=2, fuzz=30)
@given(st.sampled_from(SCALARS), st.sampled_from(("{a = 1}", "{}", '{port = "x"}')))
def test_cli_names_the_bad_key_without_a_traceback(key: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bad.toml"
        cfg.write_text(f'data_dir = "{tmp}/data"\n{key} = {value}\n')
        out = subprocess.run(
            [sys.executable, "-m", "marmot.cli", "--config", str(cfg)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    assert out.returncode == 2, out
    assert f"invalid configuration: {key}:" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
