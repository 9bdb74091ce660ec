"""Child process of ``bench_guidance_step.py --original PATH``: imports the
original BIGE code from the user's checkout (with only that checkout on the
import path, so its ``models`` / ``utils`` packages never meet this
project's), builds its guidance steps and times one step per request.

Protocol (text lines): argv = PATH MODULE:FACTORY BATCH BANK_CLIPS CODE_DIM SEQ_LEN;
prints ``ready`` (or ``error <message>``); then for each stdin line ``prox``
or ``full`` runs one step and prints its wall time in seconds; ``quit`` ends.
"""
from __future__ import annotations

import importlib
import os
import sys
import time


def main() -> None:
    path, entry, batch, clips, code_dim, seq_len = sys.argv[1:7]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [path] + [p for p in sys.path if os.path.abspath(p or ".") not in (here, os.path.dirname(here))]
    os.chdir(path)
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
        if not os.path.abspath(module.__file__).startswith(os.path.abspath(path)):
            raise ImportError(f"{module_name} resolved to {module.__file__}, outside {path}")
        factory = getattr(module, attr)
        kw = dict(batch=int(batch), bank_clips=int(clips), code_dim=int(code_dim), seq_len=int(seq_len))
        steps = {"prox": factory(proximity_only=True, **kw), "full": factory(proximity_only=False, **kw)}
    except Exception as exc:  # noqa: BLE001 - foreign code: report any failure to the parent
        print(f"error {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
        return
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        start = time.perf_counter()
        steps[cmd]()
        print(f"{time.perf_counter() - start:.6f}", flush=True)


if __name__ == "__main__":
    main()
