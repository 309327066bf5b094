"""The worker's pydantic-free manifest reader against the contract's pydantic model.

The fast path may decline a document (the model then decides), but whatever it accepts the
model must accept with the same values; and the stages' loader gives the model's verdict.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import subprocess
import sys

import pydantic
import pytest

from vsr_client.codes import VsrError
from vsr_client.contract import EncodeSettings, Manifest, SegmentPlan
from vsr_client.manifest_view import EncodeView, ManifestView, PlanView, fast_view
from vsr_worker.stages.common import load_manifest

VALID = Manifest(
    job_id="job-1",
    source="s3://bucket/in.mp4",
    work="s3://bucket/jobs/job-1",
    output="s3://bucket/outputs/out.mp4",
    scale=4,
    plan=SegmentPlan(duration=12.5, segment_time=5.0, count=3),
).model_dump(mode="json")

# Values to try in each field: valid, coercible by pydantic's lax mode, and invalid.
PROBES = [None, True, False, 0, 1, 2, 4, -1, 51, 52, 2.0, 0.5, float("inf"), "", "x", "2", "auto", "ncnn", "tpu"]
PROBES += ["inference", "debug", "libx265", "8", "10", "slow", "bad id!", "a" * 129, [], {}, "/", "s3://b/w/"]


def _documents():
    yield VALID
    yield {k: v for k, v in VALID.items() if k not in ("scale", "model", "device", "task", "encode", "version")}
    for key in VALID:
        for probe in PROBES:
            doc = copy.deepcopy(VALID)
            doc[key] = probe
            yield doc
        doc = copy.deepcopy(VALID)
        del doc[key]
        yield doc
    for section, key in itertools.chain(
        ((("plan"), k) for k in VALID["plan"]), ((("encode"), k) for k in VALID["encode"])
    ):
        for probe in PROBES:
            doc = copy.deepcopy(VALID)
            doc[section][key] = probe
            yield doc
        doc = copy.deepcopy(VALID)
        del doc[section][key]
        yield doc
    yield {**VALID, "unknown": 1}
    yield {**VALID, "plan": {**VALID["plan"], "extra": 1}}


def _as_view(model: Manifest) -> ManifestView:
    data = model.model_dump()
    data["plan"] = PlanView(**data["plan"])
    data["encode"] = EncodeView(**data["encode"])
    return ManifestView(**data)


def test_the_views_mirror_the_models_fields_and_defaults():
    for view, model in ((ManifestView, Manifest), (PlanView, SegmentPlan), (EncodeView, EncodeSettings)):
        assert {f.name for f in dataclasses.fields(view)} == set(model.model_fields)
        for field in dataclasses.fields(view):
            default = model.model_fields[field.name].get_default(call_default_factory=True)
            if field.default is not dataclasses.MISSING:
                mine = dataclasses.asdict(field.default) if dataclasses.is_dataclass(field.default) else field.default
                theirs = default.model_dump() if isinstance(default, pydantic.BaseModel) else default
                assert mine == theirs, (view.__name__, field.name)
            else:
                assert model.model_fields[field.name].is_required(), (view.__name__, field.name)


def test_what_the_fast_path_accepts_the_model_accepts_with_the_same_values():
    accepted = declined = 0
    for doc in _documents():
        view = fast_view(json.loads(json.dumps(doc)))
        if view is None:
            declined += 1
            continue
        accepted += 1
        assert view == _as_view(Manifest.model_validate(doc)), doc
    assert accepted > 20 and declined > 50  # both branches really exercised


def test_the_stage_loader_gives_the_models_verdict(tmp_path):
    for n, doc in enumerate(_documents()):
        path = tmp_path / f"m{n}.json"
        path.write_text(json.dumps(doc))
        try:
            expected = _as_view(Manifest.model_validate(doc))
        except pydantic.ValidationError:
            with pytest.raises(VsrError) as err:
                load_manifest(str(path))
            assert err.value.code.value == "invalid_manifest"
            continue
        got = load_manifest(str(path))
        assert (got if isinstance(got, ManifestView) else _as_view(got)) == expected


def test_split_and_merge_start_without_pydantic_or_torch():
    code = (
        "import sys\n"
        "import vsr_worker.cli, vsr_worker.stages.common, vsr_worker.stages.split, vsr_worker.stages.merge\n"
        "print(sorted(m for m in ('pydantic', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
