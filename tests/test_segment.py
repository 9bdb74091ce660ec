"""dataset.segment: squat repetitions found from the knee flexion of an IK
trial, against the synthetic data's own segmentation (the generator knows
where each repetition is) and a cut of the real OpenCap squats made by hand
from the knee angles; ``python -m dataset.segment`` writes files the dataset
loader reads."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dataset.mcs import DatasetError, load_segmentation
from dataset.repetitions import load_repetitions
from dataset.segment import SegmentConfig, find_repetitions, get_args_parser, main, segment_trial
from tests.real_session import IK_FILE
from utils.constants import COORDINATES
from utils.errors import UserError
from utils.motion_io import read_motion, write_coordinates

HAND_CUT = [(4, 163), (165, 308), (315, 467), (472, 627), (633, 794)]
"""The five squats of the real IK at 100 Hz, cut by hand (an audit): knee above 20 deg, widened to the
knee minima on each side."""


def test_synthetic_repetitions_are_found_where_the_generator_put_them(synthetic_root) -> None:
    matched = 0
    for seg_file in sorted((Path(synthetic_root) / "squat-segmentation-data").glob("*.npy")):
        ik = Path(synthetic_root) / "Data" / seg_file.stem / "OpenSimData" / "Kinematics" / "SQT01.mot"
        times = read_motion(ik).times
        found, _ = segment_trial(ik)
        for a, b in load_segmentation(seg_file)["SQT01"]:  # the repetitions the quality check kept
            hits = [(c, e) for c, e in found if c < b and e > a]
            assert len(hits) == 1, (seg_file.stem, (a, b), found)
            c, e = hits[0]
            assert abs(times[c] - times[a]) <= 0.15 and abs(times[e - 1] - times[b - 1]) <= 0.15, ((a, b), (c, e))
            matched += 1
        assert all(e <= c for (_, e), (c, _) in zip(found, found[1:])), "repetitions never overlap"
    assert matched >= 8


def test_the_real_squats_are_cut_as_by_hand() -> None:
    found, times = segment_trial(IK_FILE)
    assert len(times) == 801
    assert len(found) == 5
    for (c, e), (a, b) in zip(found, HAND_CUT):
        assert abs(c - a) <= 10 and abs(e - b) <= 10, (found, HAND_CUT)  # 0.1 s at 100 Hz


def test_standing_still_or_a_shallow_bend_is_no_squat() -> None:
    t = np.arange(300) / 60.0
    assert find_repetitions(np.full(300, 3.0), t) == []
    bend = 3.0 + 12.0 * np.exp(-((t - 2.5) / 0.4) ** 2)  # 12 deg: less than --min-depth 20
    assert find_repetitions(bend, t) == []
    squat = 3.0 + 80.0 * np.exp(-((t - 2.5) / 0.4) ** 2)
    [(a, b)] = find_repetitions(squat, t)
    assert 0 < a < 150 < b < 300
    with pytest.raises(UserError, match="onset < core"):
        SegmentConfig(onset=0.5, core=0.4)


def _root_without_segmentation(tmp_path: Path) -> Path:
    ik = tmp_path / "root" / "Data" / "real" / "OpenSimData" / "Kinematics" / "SQT01.mot"
    ik.parent.mkdir(parents=True)
    shutil.copy(IK_FILE, ik)
    still = tmp_path / "root" / "Data" / "still" / "OpenSimData" / "Kinematics" / "SQT01.mot"
    write_coordinates(still, np.zeros((120, len(COORDINATES))))
    return tmp_path / "root"


def test_the_command_writes_segmentation_the_loader_reads_and_never_overwrites(tmp_path, capsys) -> None:
    root = _root_without_segmentation(tmp_path)
    target = root / "squat-segmentation-data" / "real.npy"
    main(get_args_parser().parse_args([str(root), "--dry-run"]))
    assert not target.exists()
    found = main(get_args_parser().parse_args([str(root)]))
    assert list(found) == ["real"] and load_segmentation(target) == {"SQT01": segment_trial(IK_FILE)[0]}
    said = capsys.readouterr().out
    assert "real: SQT01: 5 repetition(s): 0.06-1.62 s" in said and "still: no squat repetition found in SQT01.mot" in said
    reps = load_repetitions(root, "all", use_cache=False)
    assert reps.indices == [1, 2, 3, 4, 5] and reps.motions.shape[1:] == (196, len(COORDINATES))
    # an existing file is kept unless --overwrite
    load_segmentation_before = target.read_bytes()
    np.save(target, {"SQT01": [(0, 50)]}, allow_pickle=True)
    main(get_args_parser().parse_args([str(root)]))
    assert load_segmentation(target) == {"SQT01": [(0, 50)]} and target.read_bytes() != load_segmentation_before
    main(get_args_parser().parse_args([str(root), "--overwrite"]))
    assert target.read_bytes() == load_segmentation_before


def test_a_root_without_any_squat_is_an_error(tmp_path) -> None:
    still = tmp_path / "Data" / "still" / "OpenSimData" / "Kinematics" / "SQT01.mot"
    write_coordinates(still, np.zeros((120, len(COORDINATES))))
    with pytest.raises(DatasetError, match="no squat repetition found in any session"):
        main(get_args_parser().parse_args([str(tmp_path)]))
