"""Stage timings: phases, busy fractions of pipeline threads and pools, process start-up."""

from __future__ import annotations

import subprocess
import sys
import time

from vsr_worker.timings import Timings


def test_busy_fraction_is_work_over_the_pipelines_wall_time_and_a_pool_is_averaged():
    t = Timings()
    t.pool_sizes["inference"] = 2
    with t.pipeline():
        with t.phase("encode", "encode"):
            time.sleep(0.05)
        time.sleep(0.15)
    t.add("inference", t.pipeline_seconds, "inference")  # one of two threads busy all along
    report = t.to_json()
    assert 0.2 <= report["pipeline_seconds"] < 1.0
    assert abs(report["busy_fraction"]["inference"] - 0.5) < 0.01
    assert 0.15 < report["busy_fraction"]["encode"] < 0.35  # 50 ms of about 200
    assert report["threads"] == {"inference": 2}


def test_timed_counts_the_time_spent_producing_items():
    t = Timings()

    def slow():
        for i in range(3):
            time.sleep(0.02)
            yield i

    assert list(t.timed(slow(), "decode", "decode")) == [0, 1, 2]
    assert 0.06 <= t.seconds["decode"] < 0.5 and t.busy["decode"] == t.seconds["decode"]


def test_process_age_is_the_time_since_the_process_started():
    code = "import time; time.sleep(0.4); from vsr_worker.timings import process_age; print(process_age())"
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    assert 0.4 <= float(out) <= elapsed + 0.02  # clock ticks are 10 ms
