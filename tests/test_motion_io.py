"""utils.motion_io: round trips, OpenSim compatibility, label addressing and
clear errors for every kind of bad input."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import opensim as osim
import pytest

from utils.constants import COORDINATES, TRANSLATIONS
from utils.motion_io import (
    MotionFileError, canonical_label, is_rotation, read_motion, write_coordinates, write_mot, write_trc,
)


def _coords(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 30.0, size=(n, len(COORDINATES)))
    for name in TRANSLATIONS:
        x[:, COORDINATES.index(name)] = rng.normal(0.5, 0.2, size=n)
    return x



def convert_angles(values: np.ndarray, labels: Sequence[str], to_degrees: bool) -> np.ndarray:
    """Convert the rotational-coordinate columns of ``values`` (..., C) between
    radians and degrees; translations and non-coordinate columns are unchanged."""
    out = np.array(values, dtype=np.float64, copy=True)
    mask = np.array([is_rotation(lab) for lab in labels], dtype=bool)
    out[..., mask] = np.rad2deg(out[..., mask]) if to_degrees else np.deg2rad(out[..., mask])
    return out


def test_mot_round_trip_is_exact_to_1e8(tmp_path: Path) -> None:
    x = _coords()
    path = write_coordinates(tmp_path / "a.mot", x)
    m = read_motion(path)
    np.testing.assert_allclose(m.coordinates(), x, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(m.times, np.arange(len(x)) / 60.0, rtol=1e-8, atol=1e-12)
    assert m.in_degrees is True
    assert abs(m.frame_rate - 60.0) < 1e-6


def test_written_mot_loads_in_opensim(tmp_path: Path) -> None:
    x = _coords()
    path = write_coordinates(tmp_path / "a.mot", x, extra={"/forceset/vasmed_r/activation": np.linspace(0, 1, 40)})
    table = osim.TimeSeriesTable(str(path))
    assert table.getNumRows() == 40 and table.getNumColumns() == 34
    knee = table.getDependentColumn("knee_angle_r").to_numpy()
    np.testing.assert_allclose(knee, x[:, COORDINATES.index("knee_angle_r")], rtol=1e-8)
    storage = osim.Storage(str(path))
    assert storage.getSize() == 40 and storage.isInDegrees()


def test_trc_round_trip_and_opensim_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pos = rng.normal(size=(30, 3, 3))
    times = np.arange(30) / 60.0
    path = write_trc(tmp_path / "m.trc", times, ["RKnee", "LKnee", "C7"], pos)
    m = read_motion(path)
    names, back = m.markers()
    assert names == ("RKnee", "LKnee", "C7")
    np.testing.assert_allclose(back, pos, rtol=1e-8, atol=1e-12)
    table = osim.TimeSeriesTableVec3(str(path))
    assert table.getNumRows() == 30 and list(table.getColumnLabels()) == ["RKnee", "LKnee", "C7"]


def test_trc_time_error_names_the_file_line_after_a_blank_line(tmp_path: Path) -> None:
    pos = np.random.default_rng(2).normal(size=(30, 2, 3))
    path = write_trc(tmp_path / "m.trc", np.arange(30) / 60.0, ["RKnee", "LKnee"], pos)
    lines = path.read_text().split("\n")
    assert lines[5] == "" and lines[6].startswith("1\t")  # frame j is on file line 6 + j
    fields = lines[6 + 20 - 1].split("\t")
    fields[1] = lines[6 + 19 - 1].split("\t")[1]  # frame 20 repeats the time of frame 19
    lines[6 + 20 - 1] = "\t".join(fields)
    lines.insert(6 + 10, "")  # a blank line after frame 10: frame 20 is now on file line 27
    path.write_text("\n".join(lines))
    with pytest.raises(MotionFileError, match="time is not increasing") as err:
        read_motion(path)
    assert err.value.line == 27 and str(err.value).startswith(f"{path}:27:")


def test_shuffled_columns_with_extras_load_in_canonical_order(tmp_path: Path) -> None:
    x = _coords()
    order = np.random.default_rng(2).permutation(len(COORDINATES))
    labels = [COORDINATES[i] for i in order] + ["extra_a", "/forceset/soleus_l/activation"]
    values = np.hstack([x[:, order], np.ones((40, 2))])
    path = write_mot(tmp_path / "s.mot", np.arange(40) / 60.0, labels, values, in_degrees=True)
    np.testing.assert_allclose(read_motion(path).coordinates(), x, rtol=1e-8)


def test_radians_file_loads_to_the_same_degrees(tmp_path: Path) -> None:
    x = _coords()
    rad = convert_angles(x, COORDINATES, to_degrees=False)
    # translations untouched, rotations converted
    t = COORDINATES.index("pelvis_ty")
    assert np.allclose(rad[:, t], x[:, t])
    assert np.allclose(rad[:, 0], np.deg2rad(x[:, 0]))
    path = write_mot(tmp_path / "r.mot", np.arange(40) / 60.0, COORDINATES, rad, in_degrees=False)
    np.testing.assert_allclose(read_motion(path).coordinates(), x, rtol=1e-8, atol=1e-9)


def test_opensim_path_labels_are_addressable(tmp_path: Path) -> None:
    assert canonical_label("/jointset/knee_r/knee_angle_r/value") == "knee_angle_r"
    assert canonical_label("/forceset/vasmed_l/activation") == "vasmed_l"
    labels = [f"/jointset/j/{c}/value" for c in COORDINATES]
    x = _coords()
    path = write_mot(tmp_path / "p.sto", np.arange(40) / 60.0, labels, x)
    np.testing.assert_allclose(read_motion(path).column("knee_angle_l"), x[:, COORDINATES.index("knee_angle_l")])


# ----------------------------------------------------------------------------- bad input

HEADER = "trial\nversion=1\nnRows=3\nnColumns=3\ninDegrees=yes\nendheader\ntime\ta\tb\n"


def _write(tmp_path: Path, text: str, name: str = "bad.mot") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("", 1, "empty"),
        ("trial\nnRows=1\ntime\ta\n0\t1\n", 4, "endheader"),
        (HEADER + "0\t1\t2\n0.1\t1\n0.2\t1\t2\n", 9, "expected 3 numbers, found 2"),
        (HEADER + "0\t1\t2\n0.1\t1\tabc\n0.2\t1\t2\n", 9, "'abc' is not a number"),
        (HEADER + "0\t1\t2\n0.1\t1\tnan\n0.2\t1\t2\n", 9, "non-finite"),
        (HEADER + "0\t1\t2\n0.1\tinf\t2\n0.2\t1\t2\n", 9, "non-finite"),
        (HEADER + "0\t1\t2\n0.1\t1\t2\n", 7, "nRows=3 but the body has 2"),
        (HEADER.replace("nColumns=3", "nColumns=4") + "0\t1\t2\n0.1\t1\t2\n0.2\t1\t2\n", 7, "nColumns=4"),
        (HEADER.replace("time\ta\tb", "time\ta\ta") + "0\t1\t2\n0.1\t1\t2\n0.2\t1\t2\n", 7, "duplicate column label 'a'"),
        (HEADER + "0\t1\t2\n0.1\t1\t2\n0.05\t1\t2\n", 10, "time is not increasing"),
        # a blank line inside the body is a file line: the error names the file's line, not the row
        (HEADER + "0\t1\t2\n\n0.1\t1\t2\n0.05\t1\t2\n", 11, "time is not increasing (0.1 then 0.05)"),
        ((HEADER + "0\t1\t2\n\n \t\n0.1\t1\t2\n0.1\t1\t2\n").replace("\n", "\r\n"), 12,
         "time is not increasing (0.1 then 0.1)"),
    ],
    ids=["empty", "no-endheader", "ragged", "non-numeric", "nan", "inf", "nrows", "ncolumns", "duplicate", "time",
         "time-after-blank-line", "time-after-blank-lines-crlf"],
)
def test_bad_file_error_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(MotionFileError) as err:
        read_motion(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert words in message
    assert err.value.line == line


def test_missing_coordinates_are_listed(tmp_path: Path) -> None:
    x = _coords()
    keep = [c for c in COORDINATES if c not in ("knee_angle_r", "pelvis_ty")]
    path = write_mot(tmp_path / "m.mot", np.arange(40) / 60.0, keep, x[:, [COORDINATES.index(c) for c in keep]])
    with pytest.raises(MotionFileError, match=r"missing required coordinates \(2\): pelvis_ty, knee_angle_r"):
        read_motion(path).coordinates()


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MotionFileError, match="unknown motion file type"):
        read_motion(tmp_path / "x.csv")
    with pytest.raises(MotionFileError, match="does not exist"):
        read_motion(tmp_path / "x.mot")


def test_space_separated_mot_reads(tmp_path: Path) -> None:
    text = "t\nnRows=2\nnColumns=3\ninDegrees=no\nendheader\ntime a b\n0 1 2\n0.5   3 4\n"
    m = read_motion(_write(tmp_path, text))
    assert m.labels == ("a", "b") and m.in_degrees is False
    np.testing.assert_allclose(m.column("b"), [2, 4])


def test_write_refuses_non_finite(tmp_path: Path) -> None:
    x = _coords()
    x[3, 4] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_coordinates(tmp_path / "n.mot", x)
    assert not (tmp_path / "n.mot").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
