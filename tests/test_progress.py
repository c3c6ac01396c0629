"""Progress lines of a running segment, driven by a fake clock (no waiting)."""

from __future__ import annotations

import io

from qdphonon.engines.process import Stop, StopReason
from qdphonon.engines.progress import ProgressReporter, combine_watches, progress_line


def test_progress_line_rate_and_time_left():
    assert progress_line(1200, 200, 4000, 2000.0) == "run-aimd: MD step 1200 of 4000, 2 s/step, about 1.6 h left"  # 2800 steps x 2 s
    assert progress_line(30, 20, 40, 50.0) == "run-aimd: MD step 30 of 40, 5 s/step, about 0.8 min left"
    assert "no step finished yet" in progress_line(20, 20, 40, 12.0)


def test_reporter_prints_every_period_from_the_energy_file(tmp_path):
    ener = tmp_path / "md-1.ener"
    ener.write_text("#  Step Nr.  Time[fs]\n" + "".join(f"{k:>10d} {2.0 * k:>12.3f}\n" for k in range(0, 11)))
    now = [0.0]
    out = io.StringIO()
    rep = ProgressReporter(ener, 0, 100, every_s=300.0, clock=lambda: now[0], out=out)
    now[0] = 299.0
    assert rep() is None and out.getvalue() == ""
    now[0] = 300.0
    assert rep() is None
    assert out.getvalue() == "run-aimd: MD step 10 of 100, 30 s/step, about 45.0 min left\n"
    now[0] = 400.0
    rep()
    assert out.getvalue().count("\n") == 1


def test_combined_watch_keeps_the_stop_reason():
    assert combine_watches(None, None) is None
    calls = []
    stop = Stop(StopReason.SCF_NOT_CONVERGED, "SCF not converged at MD step 3 (policy fail)")
    w = combine_watches(lambda: calls.append(1), lambda: stop)
    assert w() is stop and calls == [1]
