"""Segment planning, ownership and the job graph: the data every adapter shares."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from vsr_client.contract import ErrorCode, ExitCode, VsrError, plan_segments
from vsr_client.jobgraph import build_job_graph
from vsr_worker.stages.common import Ownership


@pytest.mark.parametrize(
    ("duration", "segment_time", "count"),
    [(120.0, 60, 2), (120.1, 60, 3), (59.9, 60, 1), (0.0, 60, 1), (4.5, 2, 3), (2.1, 0.3, 7), (0.7, 0.1, 7)],
)
def test_plan_is_ceil_of_duration_over_segment_time(duration, segment_time, count):
    assert plan_segments(duration, segment_time).count == count


def test_plan_uses_the_decimal_values_not_float_noise():
    assert math.ceil(4.2 / 0.7) == 7  # float division: 6.000000000000001
    assert plan_segments(4.2, 0.7).count == 6


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_plan_rejects_non_positive_segment_time(bad):
    with pytest.raises(VsrError) as err:
        plan_segments(10, bad)
    assert err.value.code == ErrorCode.INVALID_SEGMENT_TIME
    assert err.value.exit_code == ExitCode.USAGE


def test_every_pts_has_exactly_one_owner_and_bounds_agree():
    plan = plan_segments(3.0, 1.0)
    own = Ownership(plan=plan, t0=-2002, time_base=Fraction(1, 30000))
    bounds = [own.pts_bounds(i) for i in range(plan.count)]
    assert bounds[0][0] is None and bounds[-1][1] is None
    assert bounds[0][1] == bounds[1][0] == -2002 + 30000
    for pts in range(-10_000, 200_000, 7):
        owners = [i for i, (lo, hi) in enumerate(bounds) if (lo is None or pts >= lo) and (hi is None or pts < hi)]
        by_seconds = min(max(math.floor((pts + 2002) * Fraction(1, 30000) / 1), 0), plan.count - 1)
        assert owners == [own.owner(pts)] == [by_seconds]
    assert own.owner(10**9) == plan.count - 1  # frames beyond the planned duration go to the last segment


def test_job_graph_is_split_then_array_then_merge():
    graph = build_job_graph("s3://bucket/jobs/j1/manifest.json", 5)
    assert [s.name for s in graph] == ["split", "upscale", "merge"]
    split, upscale, merge = graph
    assert split.command == ["vsr-worker", "split", "--manifest", "s3://bucket/jobs/j1/manifest.json"]
    assert (upscale.array_size, upscale.depends_on, merge.depends_on) == (5, ["split"], ["upscale"])


def test_one_segment_is_a_plain_job_not_an_array():
    upscale = build_job_graph("m.json", 1)[1]
    assert upscale.array_size == 0 and upscale.children == 1
