"""OpenSim's log, quiet while a model loads or scales."""
from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def opensim_quiet() -> Iterator[None]:
    """Silence OpenSim's log below errors for a block (one warning per missing
    mesh file, '[info] Loaded model'). Afterwards the previous level is
    restored, except that info (or more verbose) becomes warn: one
    '[info] Loaded model' line per subject is noise in the scripts."""
    import opensim as osim

    previous = osim.Logger.getLevelString()
    verbose = osim.Logger.shouldLog(osim.Logger.Level_Info)
    if osim.Logger.shouldLog(osim.Logger.Level_Warn):
        osim.Logger.setLevelString("error")
    try:
        yield
    finally:
        osim.Logger.setLevelString("warn" if verbose else previous)
