"""utils.fastparse: the C number parser gives exactly what strtod gives (numpy's
parser) for every token, names the first bad token, and motion files read the
same through either parser."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from utils import fastparse
from utils.fastparse import ParseError, parse_table

pytestmark = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")


BUILDS = {"shipped": [], "sse2": ["-DBIGE_NO_SSSE3"], "portable": ["-DBIGE_NO_SIMD"]}


@pytest.fixture(scope="module", params=list(BUILDS))
def c_parser(request, tmp_path_factory):
    """The C parser, compiled afresh from the source into a temporary folder:
    as shipped (on x86-64 its SSSE3 path where the CPU has it, else SSE2),
    with its SSE2 path only, and with only its portable path."""
    lib = fastparse.build(tmp_path_factory.mktemp("fastparse") / "_fastparse.so", flags=BUILDS[request.param])
    fn = fastparse.load(lib)
    assert fn is not None
    return fn


def test_each_build_takes_the_fast_path_it_names(c_parser, request):
    """So that the tests of each build really exercise that path."""
    import platform

    build = request.node.callspec.params["c_parser"]
    if platform.machine() not in ("x86_64", "AMD64"):
        assert c_parser.simd_level == 0
    elif build == "shipped":
        assert c_parser.simd_level in (1, 2)
    else:
        assert c_parser.simd_level == {"sse2": 1, "portable": 0}[build]


def _reference(text: str) -> np.ndarray:
    return np.array([float(t) for t in text.split()], dtype=np.float64)


def test_random_values_in_every_format_match_strtod_bit_for_bit(c_parser):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 30, 3000), rng.normal(0, 1e-4, 500), rng.uniform(-1e9, 1e9, 500),
                        10.0 ** rng.uniform(-40, 40, 500) * rng.choice([-1, 1], 500), [0.0, -0.0, 1.0, -1.0]])
    tokens = []
    for fmt in ("%.10g", "%20.8f", "%.17g", "%.3e", "%.6f", "%.0f", "%.25g", "%g"):
        tokens += [fmt % v for v in x]
    tokens += ["1.", ".5", "-.5", "+3", "1E5", "1e+05", "2.5E-3", "007", "0.000000000000000000000001",
               "123456789012345678901234567890", "9007199254740993", "1e308", "1e-320", "nan", "-inf", "Infinity"]
    text = "\t".join(tokens[: len(tokens) // 2]) + "\t\n " + "  ".join(tokens[len(tokens) // 2:]) + "\r\n"
    table = parse_table(text.encode(), parser=c_parser)
    got, want = table.values, _reference(text)
    assert table.rows == 2 and table.bad_line == -1
    assert got.shape == want.shape
    assert np.array_equal(got.view(np.int64)[np.isfinite(want)], want.view(np.int64)[np.isfinite(want)])
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("text, offset", [("1 2 abc 4", 4), ("1\t2\t3x\n", 4), ("1 - 2", 2), ("1,2", 0),
                                          ("1e 2", 0), ("5 6 1.2.3", 4)])
def test_first_bad_token_is_named_by_its_offset(c_parser, text, offset):
    for parser in (c_parser, None):
        with pytest.raises(ParseError) as err:
            parse_table(text.encode(), parser=parser) if parser else fastparse._parse_table_numpy(text.encode(), 0, 0)
        assert err.value.offset == offset


def test_rows_and_the_first_ragged_line_are_counted(c_parser):
    data = b"header\n1 2 3\n\n4 5 6\t\n  7 8\n9 10 11\n12 13 14 15"
    start = data.index(b"\n") + 1
    for table in (parse_table(data, start, 3, parser=c_parser), fastparse._parse_table_numpy(data, start, 3)):
        np.testing.assert_array_equal(table.values, np.arange(1, 16))
        assert table.rows == 5 and table.bad_line == 3  # line 0 "1 2 3", line 1 blank, line 3 "7 8"
    assert parse_table(b"  \n\t ", parser=c_parser).rows == 0


def test_motion_files_read_identically_with_either_parser(c_parser, monkeypatch):
    from utils.motion_io import read_motion

    real = Path(__file__).parent / "data" / "real_opencap"
    for path in (real / "opencap-to-nwb" / "Squats_0_1_kinematics_activations.mot",
                 real / "opencap-processing" / "squats1_videoAndMocap.mot"):
        monkeypatch.setattr(fastparse, "_C_PARSER", c_parser)
        fast = read_motion(path)
        monkeypatch.setattr(fastparse, "_C_PARSER", None)
        slow = read_motion(path)
        assert fast.labels == slow.labels
        assert np.array_equal(fast.values, slow.values) and np.array_equal(fast.times, slow.times)


def test_a_wrong_row_hint_costs_a_second_pass_not_a_wrong_value(c_parser) -> None:
    rng = np.random.default_rng(3)
    table = rng.normal(size=(7, 5)) * 100
    text = "".join("\t".join(f"{v:.9g}" for v in row) + "\n" for row in table).encode()
    exact = parse_table(text, 0, 5, parser=c_parser)
    for hint in (0, 1, 6, 7, 50):  # unknown, far too few, one short, right, far too many
        got = parse_table(text, 0, 5, parser=c_parser, rows_hint=hint)
        assert got.rows == 7 and got.bad_line == -1
        np.testing.assert_array_equal(got.values, exact.values)
        np.testing.assert_array_equal(got.values.reshape(7, 5), _reference(text.decode()).reshape(7, 5))


# ----------------------------------------------------------------------------- differential tests

SPECIAL_TOKENS = [
    "0", "-0", "+0", "0.0", "-0.0", "00000", "0.", ".0", "+.5", "-.5", "5.", "-5.", "1e22", "1e23", "-1e22",
    "9007199254740992", "9007199254740993", "9007199254740994", "9007199254740995", "-9007199254740993",
    "900719925474099.3", "90071992547409.93", "123456789012345", "1234567890123456", "12345678901234567",
    "0.123456789012345", "0.1234567890123456", "999999999999999", "999999999999999.9", ".999999999999999",
    "4.9e-324", "2.4703282292062327e-324", "2.4703282292062328e-324", "1e-320", "2.2250738585072011e-308",
    "2.2250738585072012e-308", "1.7976931348623157e308", "1.7976931348623159e308", "1e400", "-1e400", "1e-400",
    "nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "-INFINITY", "1E5", "1e+05", "2.5E-3", "1e0",
    "000000000000000000001.5", "0.000000000000000000000001", "123456789012345678901234567890",
    "-3.963145899", "19.21267951", "0.01666666667", "3.331", "-0.0001234567891", "1.000000000000000000001",
]


def _random_token(rng: np.random.Generator) -> str:
    """A valid decimal of a random shape: sign, 0-25 integer digits (leading
    zeros allowed), an optional '.' with 0-25 decimals, an optional exponent."""
    while True:
        sign = str(rng.choice(["", "", "-", "+"]))
        whole = "".join(rng.choice(list("0123456789"), int(rng.integers(0, 26))))
        if rng.random() < 0.3:
            whole = "0" * int(rng.integers(1, 4)) + whole
        frac = "." + "".join(rng.choice(list("0123456789"), int(rng.integers(0, 26)))) if rng.random() < 0.8 else ""
        if not whole and len(frac) <= 1:
            continue  # no digit at all: not a number
        exp = ""
        if rng.random() < 0.25:
            exp = str(rng.choice(["e", "E"])) + str(rng.choice(["", "-", "+"])) + str(int(rng.integers(0, 400)))
        return sign + whole + frac + exp


def _short_token(rng: np.random.Generator) -> str:
    """A decimal of the shapes the SIMD path takes: sign, <= 15 digits, one '.'."""
    digits = "".join(rng.choice(list("0123456789"), int(rng.integers(1, 16))))
    dot = int(rng.integers(0, len(digits) + 1))
    token = digits[:dot] + "." + digits[dot:] if rng.random() < 0.9 else digits
    return str(rng.choice(["", "-", "+"])) + token


def _join(rng: np.random.Generator, tokens: list[str]) -> str:
    """Tokens in lines of 1-12, random separators, LF or CRLF line ends, blank lines."""
    out, k = [], 0
    while k < len(tokens):
        n = int(rng.integers(1, 13))
        sep = [str(rng.choice(["\t", " ", "  ", "\t ", " \t", "\t\t"])) for _ in range(n)]
        line = "".join(t + s for t, s in zip(tokens[k:k + n], sep))
        if rng.random() < 0.5:
            line = line.rstrip(" \t")  # with or without a trailing separator
        out.append(line + str(rng.choice(["\n", "\r\n", "\n\n", " \n"])))
        k += n
    return "".join(out)


def _assert_bit_equal(got: np.ndarray, tokens: list[str]) -> None:
    want = np.array([float(t) for t in tokens], dtype=np.float64)
    assert got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    same = got.view(np.int64)[~nan] == want.view(np.int64)[~nan]  # bit for bit: -0.0 and 0.0 differ
    if not same.all():
        k = int(np.flatnonzero(~nan)[np.argmin(same)])
        raise AssertionError(f"{tokens[k]!r}: parsed {got[k]!r}, float() gives {want[k]!r}")


def test_random_token_shapes_match_float_bit_for_bit(c_parser):
    rng = np.random.default_rng(18)
    for _ in range(20):
        tokens = [_random_token(rng) for _ in range(1500)] + [_short_token(rng) for _ in range(1500)]
        tokens += SPECIAL_TOKENS + [f"{v:.17g}" for v in rng.normal(0, 1, 200) * 2.0 ** rng.integers(-60, 60, 200)]
        tokens = [tokens[i] for i in rng.permutation(len(tokens))]
        table = parse_table(_join(rng, tokens).encode(), parser=c_parser)
        _assert_bit_equal(table.values, tokens)
        finite = np.isfinite(table.values)
        assert table.nonfinite == (-1 if finite.all() else int(np.argmin(finite)))


def test_every_short_decimal_at_every_distance_from_the_end_matches_float(c_parser):
    """The SIMD path reads 16 bytes: a token near the end of the buffer takes the
    general parser, one further in the SIMD path; both must give the same bits."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        tokens = [_short_token(rng) for _ in range(4)]
        text = "\t".join(tokens) + str(rng.choice(["", "\n", "\t", "\r\n", "   \n"]))
        for cut in range(len(text)):  # every suffix that starts at a token
            if cut == 0 or text[cut - 1] == "\t":
                _assert_bit_equal(parse_table(text[cut:].encode(), parser=c_parser).values, text[cut:].split())


BAD_TOKENS = [".", "-", "+", "-.", "+.", "..", "1.2.3", "1..2", "1e", "1e+", "1e-", "e5", "--1", "+-1", "1-",
              "1+2", "1.5x", "x1.5", "abc", "1,5", "0.5.", "-.e1", "12345678901234.5.", "1.2345678901234,",
              "3.963145899-", "-3.963145899.1", "nanx", "infx", "1e5.5", "1_000"]


@pytest.mark.parametrize("bad", BAD_TOKENS)
def test_a_bad_token_anywhere_is_named_by_its_offset(c_parser, bad):
    rng = np.random.default_rng(len(bad))
    good = [_short_token(rng) for _ in range(40)]
    for where in (0, 1, 20, 39, 40):  # first, inside the SIMD window, and last in the buffer
        tokens = good[:where] + [bad] + good[where:]
        text = "\t".join(tokens) + "\n"
        offset = sum(len(t) + 1 for t in tokens[:where])
        for parser in (c_parser, None):
            with pytest.raises(ParseError) as err:
                if parser is None:
                    fastparse._parse_table_numpy(text.encode(), 0, 0)
                else:
                    parse_table(text.encode(), parser=parser)
            assert err.value.offset == offset, (bad, where, parser)


def test_no_byte_past_the_final_nul_is_read(c_parser):
    """Bodies placed flush against an unreadable page: a read past their
    final '\\0' kills the test process."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = mmap.PAGESIZE
    region = mmap.mmap(-1, 2 * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(region))
    assert libc.mprotect(base + page, page, 0) == 0, ctypes.get_errno()  # PROT_NONE
    try:
        rng = np.random.default_rng(11)
        rows, bad, nonfinite = ctypes.c_long(), ctypes.c_long(), ctypes.c_long()
        out = np.empty(64)
        for _ in range(2000):
            tokens = [_short_token(rng) if rng.random() < 0.8 else _random_token(rng)
                      for _ in range(int(rng.integers(1, 4)))]
            body = ("\t".join(tokens) + str(rng.choice(["", "\n", "\t", " \r\n"]))).encode() + b"\0"
            start = page - len(body)
            region[start:page] = body
            count = c_parser(ctypes.c_char_p(base + start), 0, len(body) - 1, 0, out.ctypes.data, len(out),
                             ctypes.byref(rows), ctypes.byref(bad), ctypes.byref(nonfinite))
            assert count == len(tokens)
            _assert_bit_equal(out[:count], tokens)
    finally:
        libc.mprotect(base + page, page, 3)  # PROT_READ | PROT_WRITE, so the mapping can be closed


def test_random_files_parse_identically_with_numpy(c_parser):
    """Whole bodies in every variant (tabs or spaces, trailing separators,
    CRLF, blank lines, ragged and non-finite rows): same values, rows, first
    ragged line and first non-finite value from the C parser and numpy's."""
    rng = np.random.default_rng(5)
    for trial in range(60):
        n_rows, n_cols = int(rng.integers(1, 40)), int(rng.integers(1, 30))
        values = rng.normal(0, 10.0 ** rng.integers(-6, 6), (n_rows, n_cols))
        fmt = str(rng.choice(["%.10g", "%.17g", "%.6f", "%.3e", "%g"]))
        cells = [[fmt % v for v in row] for row in values]
        if trial % 3 == 1:
            cells[int(rng.integers(n_rows))][int(rng.integers(n_cols))] = str(rng.choice(["nan", "inf", "-inf", "1e400"]))
        if trial % 5 == 2 and n_rows > 1:
            cells[int(rng.integers(n_rows))].append("1")  # a ragged line
        lines = []
        for row in cells:
            sep = str(rng.choice(["\t", " ", "   "]))
            lines.append(sep.join(row) + str(rng.choice(["", sep])) + str(rng.choice(["\n", "\r\n"])))
            if rng.random() < 0.1:
                lines.append(str(rng.choice(["\n", " \n", "\t\r\n"])))
        data = ("header line\nendheader\n" + "".join(lines)).encode()
        start = data.index(b"endheader\n") + len(b"endheader\n")
        fast = parse_table(data, start, n_cols, parser=c_parser, rows_hint=n_rows)
        slow = fastparse._parse_table_numpy(data, start, n_cols)
        assert (fast.rows, fast.bad_line, fast.nonfinite) == (slow.rows, slow.bad_line, slow.nonfinite)
        assert fast.values.shape == slow.values.shape
        assert np.array_equal(fast.values.view(np.int64), slow.values.view(np.int64))
