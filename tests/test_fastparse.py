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


@pytest.fixture(scope="module")
def c_parser(tmp_path_factory):
    """The C parser, compiled afresh from the source into a temporary folder."""
    lib = fastparse.build(tmp_path_factory.mktemp("fastparse") / "_fastparse.so")
    fn = fastparse.load(lib)
    assert fn is not None
    return fn


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
