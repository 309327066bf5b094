"""AWS Batch's documented EvaluateOnExit semantics, written from the API reference (not from
the code under test): a pattern is exact or ends in '*'; every condition a rule names must
match; the first matching rule wins; an attempt no rule matches is retried."""

from __future__ import annotations


def batch_decides(rules: list[dict], exit_code: int | None, status_reason: str = "", reason: str = "") -> str:
    def glob(pattern: str, value: str) -> bool:
        return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern

    seen = {"onExitCode": "" if exit_code is None else str(exit_code), "onStatusReason": status_reason}
    seen["onReason"] = reason
    for rule in rules:
        if all(glob(v, seen[k]) for k, v in rule.items() if k != "action"):
            return rule["action"].upper()
    return "RETRY"
