"""utils.motion_io on files written by OpenCap and OpenSim, not by this project.

Every variant is read twice, by ``read_motion`` and by OpenSim's own
``TimeSeriesTable`` / ``Storage``, and the two must agree value for value.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import opensim as osim
import pytest

from dataset.clips import fit_length
from utils.constants import COORDINATES, COUPLED_COORDINATES, MUSCLES, TRANSLATIONS
from utils.motion_io import MotionFileError, read_motion

REAL = Path(__file__).parent / "data" / "real_opencap"
MUSCLE_DRIVEN = REAL / "opencap-to-nwb" / "Squats_0_1_kinematics_activations.mot"
IK_100HZ = REAL / "opencap-processing" / "squats1_videoAndMocap.mot"


def _opensim_read(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Times, labels and values (T, C) as OpenSim reads them: its
    TimeSeriesTable, or its Storage for the space-separated files that the
    table adapter refuses."""
    try:
        table = osim.TimeSeriesTable(str(path))
    except RuntimeError:
        storage = osim.Storage(str(path))
        labels = [storage.getColumnLabels().get(i) for i in range(1, storage.getColumnLabels().getSize())]
        times = osim.ArrayDouble()
        storage.getTimeColumn(times)
        columns = []
        for lab in labels:
            col = osim.ArrayDouble()
            storage.getDataColumn(lab, col)
            columns.append([col.get(i) for i in range(col.getSize())])
        return np.array([times.get(i) for i in range(times.getSize())]), labels, np.array(columns).T
    times = np.array(table.getIndependentColumn())
    labels = list(table.getColumnLabels())
    values = np.column_stack([table.getDependentColumn(lab).to_numpy() for lab in labels])
    return times, labels, values


def _assert_same_as_opensim(path: Path) -> None:
    m = read_motion(path)
    times, labels, values = _opensim_read(path)
    assert list(m.labels) == labels
    np.testing.assert_array_equal(m.times, times)
    np.testing.assert_array_equal(m.values, values)
    storage = osim.Storage(str(path))
    assert storage.getSize() == m.n_frames
    assert bool(storage.isInDegrees()) == m.in_degrees


# ----------------------------------------------------------------------------- the real files


@pytest.mark.parametrize("path", [MUSCLE_DRIVEN, IK_100HZ], ids=["muscle-driven-old-header", "ik-100hz"])
def test_real_opencap_files_read_as_opensim_reads_them(path: Path) -> None:
    _assert_same_as_opensim(path)


def test_real_muscle_driven_file_left_first_with_activations() -> None:
    m = read_motion(MUSCLE_DRIVEN)
    # older header: no nRows / inDegrees; counts checked against datarows / datacolumns
    assert m.metadata["datarows"] == "87" and m.metadata["datacolumns"] == "114"
    assert m.in_degrees is True and "2*pi" in m.unit_note
    assert m.labels[6] == "hip_flexion_l"  # left leg first
    coords = m.coordinates()
    assert coords.shape == (87, 33)
    knee = coords[:, COORDINATES.index("knee_angle_r")]
    assert 95.0 < knee.max() < 110.0  # ~103 deg at the bottom of the squat
    assert all(m.has(muscle) for muscle in MUSCLES)
    act = m.columns(MUSCLES)
    assert act.shape == (87, 80) and 0.0 <= act.min() and act.max() <= 1.0
    peak_vasmed = max(m.column("vasmed_r").max(), m.column("vasmed_l").max())
    assert 0.35 < peak_vasmed < 0.5
    # ~50 Hz mesh with slightly uneven steps
    steps = np.diff(m.times)
    assert abs(m.frame_rate - 50.0) < 1.0 and np.ptp(steps) >= 0.0


def test_real_ik_file_betas_never_leak_into_the_33() -> None:
    m = read_motion(IK_100HZ)
    assert abs(m.frame_rate - 100.0) < 1e-6
    assert m.has("knee_angle_r_beta") and m.has("knee_angle_l_beta")
    coords = m.coordinates()
    assert coords.shape == (801, 33)
    for beta in COUPLED_COORDINATES:
        assert beta not in COORDINATES
        # stored in radians despite inDegrees=yes (the knee reaches ~88 deg, its beta ~1.5)
        assert 1.0 < np.abs(m.column(beta)).max() < 2.0
    # radians conversion touches only the 33 coordinates' rotations
    rad = m.coordinates(degrees=False)
    rot = [i for i, c in enumerate(COORDINATES) if c not in TRANSLATIONS]
    np.testing.assert_allclose(np.rad2deg(rad[:, rot]), coords[:, rot], rtol=1e-12)


# ----------------------------------------------------------------------------- written variants

LABELS = ["time", "pelvis_tx", "knee_angle_l", "knee_angle_r", "vasmed_l/activation", "vasmed_r/activation"]
ROWS = np.array([
    [0.00, 0.91, 10.5, 12.25, 0.05, 0.06],
    [0.02, 0.90, 40.0, 41.50, 0.21, 0.22],
    [0.039, 0.89, 80.125, 82.0, 0.40, 0.41],
    [0.061, 0.88, 100.0, 101.0, 0.42, 0.43],
])


def _rows_text(sep: str, trailing: str) -> str:
    return "".join(sep.join(f"{v:.6f}" for v in row) + trailing + "\n" for row in ROWS)


VARIANTS = {
    "old-header-trailing-tab": (
        "name C:/some/where\\kinematics_act.mot\ndatacolumns 6\ndatarows 4\nrange 0.000000 0.061000\n"
        "endheader \n" + "\t".join(LABELS) + "\t\n" + _rows_text("\t", "\t")
    ),
    "new-header-free-text-trailing-tab": (
        "Coordinates\nversion=1\nnRows=4\nnColumns=6\ninDegrees=yes\n\n"
        "Units are S.I. units (second, meters, Newtons, ...)\n"
        "If the header above contains a line with 'inDegrees', this indicates whether rotational values "
        "are in degrees (yes) or radians (no).\n\nendheader\n" + "\t".join(LABELS) + "\t\n" + _rows_text("\t", "\t")
    ),
    "spaces-trailing-space": (
        "motion\nnRows=4\nnColumns=6\ninDegrees=yes\nendheader\n" + "  ".join(LABELS) + " \n"
        + _rows_text("   ", "  ")
    ),
    "crlf-padded-fixed-width": (
        "motion\r\nversion=1\r\nnRows=4\r\nnColumns=6\r\ninDegrees=yes\r\nendheader\r\n" + "\t".join(LABELS)
        + "\r\n" + "".join("\t".join(f"{v:20.8f}" for v in row) + "\t\r\n" for row in ROWS)
    ),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_header_and_separator_variants_match_opensim(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.mot"
    path.write_bytes(VARIANTS[name].encode())
    _assert_same_as_opensim(path)
    m = read_motion(path)
    np.testing.assert_allclose(m.times, ROWS[:, 0])
    np.testing.assert_allclose(m.columns(["pelvis_tx", "knee_angle_l", "knee_angle_r", "vasmed_l", "vasmed_r"]),
                               ROWS[:, 1:])
    assert m.in_degrees is True


def test_activation_naming_styles_and_side_order(tmp_path: Path) -> None:
    """``<m>/activation`` (OpenCap), ``/forceset/<m>/activation`` (Moco) and bare
    ``<m>`` (static optimisation, right side first, with reserves and residuals)."""
    values = {"vasmed_r": [0.1, 0.2], "vasmed_l": [0.3, 0.4]}
    styles = {
        "opencap.mot": ["vasmed_l/activation", "vasmed_r/activation"],
        "moco.sto": ["/forceset/vasmed_r/activation", "/forceset/vasmed_l/activation"],
        "so.sto": ["vasmed_r", "vasmed_l", "knee_angle_r_reserve", "FX", "MZ"],
    }
    for file_name, labels in styles.items():
        table = osim.TimeSeriesTable()
        table.setColumnLabels(osim.StdVectorString(labels))
        for i in range(2):
            row = osim.RowVector(len(labels), 0.0)
            for j, lab in enumerate(labels):
                short = lab.split("/")[-2] if "/" in lab else lab
                row[j] = values[short][i] if short in values else 7.0
            table.appendRow(0.01 * i, row)
        table.addTableMetaDataString("inDegrees", "no")
        path = tmp_path / file_name
        osim.STOFileAdapter.write(table, str(path))
        _assert_same_as_opensim(path)
        m = read_motion(path)
        np.testing.assert_allclose(m.columns(["vasmed_r", "vasmed_l"]), np.array([[0.1, 0.3], [0.2, 0.4]]))


def test_radians_storage_from_opensim_reads_to_degrees(tmp_path: Path) -> None:
    """A Storage printed by OpenSim in radians (inDegrees=no), coordinates in
    any order, reads to the same degrees."""
    order = list(reversed(COORDINATES))
    rng = np.random.default_rng(3)
    deg = rng.uniform(-60, 60, size=(5, 33))
    table = osim.TimeSeriesTable()
    table.setColumnLabels(osim.StdVectorString(order))
    for i in range(5):
        row = osim.RowVector(33, 0.0)
        for j, name in enumerate(order):
            k = COORDINATES.index(name)
            row[j] = deg[i, k] if name in TRANSLATIONS else np.deg2rad(deg[i, k])
        table.appendRow(i / 60.0, row)
    table.addTableMetaDataString("inDegrees", "no")
    path = tmp_path / "rad.mot"
    osim.STOFileAdapter.write(table, str(path))
    _assert_same_as_opensim(path)
    np.testing.assert_allclose(read_motion(path).coordinates(), deg, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("word, degrees", [("yes", True), ("Y", True), ("TRUE", True), ("no", False), ("n", False)])
def test_indegrees_spellings(tmp_path: Path, word: str, degrees: bool) -> None:
    path = tmp_path / "a.mot"
    path.write_text(f"a\ninDegrees={word}\nendheader\ntime\tknee_angle_r\n0\t1.5\n0.1\t1.6\n")
    assert read_motion(path).in_degrees is degrees


def test_indegrees_nonsense_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.mot"
    path.write_text("a\nversion=1\ninDegrees=maybe\nendheader\ntime\tknee_angle_r\n0\t1.5\n")
    with pytest.raises(MotionFileError, match=r"a\.mot:3: inDegrees='maybe': expected yes or no"):
        read_motion(path)


def test_silent_header_with_small_angles_warns_and_assumes_degrees(tmp_path: Path, caplog) -> None:
    path = tmp_path / "small.mot"
    path.write_text("a\nendheader\ntime\tknee_angle_r\thip_flexion_r\n0\t0.5\t0.2\n0.1\t1.2\t0.6\n")
    with caplog.at_level(logging.INFO, logger="utils.motion_io"):
        m = read_motion(path)
    assert m.in_degrees is True and "ambiguous" in m.unit_note
    assert any(r.levelno == logging.WARNING and "small.mot" in r.getMessage() for r in caplog.records)


def test_same_coordinate_under_two_names_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.mot"
    path.write_text("a\ninDegrees=yes\nendheader\ntime\tknee_angle_r\t/jointset/knee_r/knee_angle_r/value\n"
                    "0\t1\t2\n0.1\t1\t2\n")
    with pytest.raises(MotionFileError, match="both name 'knee_angle_r'"):
        read_motion(path)


def test_empty_field_in_a_tab_row_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "gap.mot"
    path.write_text("a\ninDegrees=yes\nendheader\ntime\tx\ty\n0\t1\t2\t\n0.1\t\t2\t\n")
    with pytest.raises(MotionFileError, match=r"gap\.mot:6: column 2 is empty"):
        read_motion(path)


def test_old_header_count_mismatch_is_refused(tmp_path: Path) -> None:
    text = VARIANTS["old-header-trailing-tab"].replace("datarows 4", "datarows 5")
    path = tmp_path / "old.mot"
    path.write_text(text)
    with pytest.raises(MotionFileError, match="datarows=5 but the body has 4"):
        read_motion(path)


@pytest.mark.parametrize("units, factor", [("m", 1.0), ("mm", 1e-3), ("cm", 1e-2)])
def test_trc_units_convert_to_metres(tmp_path: Path, units: str, factor: float) -> None:
    from utils.motion_io import write_trc

    pos = np.arange(2 * 2 * 3, dtype=float).reshape(2, 2, 3) + 1.0
    path = write_trc(tmp_path / "m.trc", np.array([0.0, 0.01]), ["A", "B"], pos, units=units)
    names, back = read_motion(path).markers()
    np.testing.assert_allclose(back, pos * factor)
    table = osim.TimeSeriesTableVec3(str(path))
    assert table.getTableMetaDataAsString("Units") == units


def test_trc_unknown_units_is_refused(tmp_path: Path) -> None:
    from utils.motion_io import write_trc

    path = write_trc(tmp_path / "m.trc", np.array([0.0, 0.01]), ["A"], np.ones((2, 1, 3)), units="inch")
    with pytest.raises(MotionFileError, match=r"m\.trc:3: Units='inch': expected one of"):
        read_motion(path)


# ----------------------------------------------------------------------------- frame rates


def test_uneven_mesh_is_resampled_by_its_time_column() -> None:
    """A ~50 Hz muscle-driven mesh with uneven steps: resampling by time puts a
    linear-in-time signal on a straight line, resampling by row index does not."""
    times = np.cumsum(np.r_[0.0, np.where(np.arange(40) % 3 == 0, 0.03, 0.015)])
    signal = (2.0 * times + 1.0)[:, None]
    by_time = fit_length(signal, 196, "resample", times=times)[:, 0]
    expected = 2.0 * np.linspace(times[0], times[-1], 196) + 1.0
    np.testing.assert_allclose(by_time, expected, atol=1e-12)
    by_index = fit_length(signal, 196, "resample")[:, 0]
    assert np.abs(by_index - expected).max() > 0.01


def test_real_muscle_driven_repetition_resamples_by_time() -> None:
    m = read_motion(MUSCLE_DRIVEN)
    knee = m.coordinates()[:, [COORDINATES.index("knee_angle_r")]]
    clip = fit_length(knee, 196, "resample", times=m.times)[:, 0]
    uniform = np.linspace(m.times[0], m.times[-1], 196)
    np.testing.assert_allclose(clip, np.interp(uniform, m.times, knee[:, 0]), atol=1e-9)
