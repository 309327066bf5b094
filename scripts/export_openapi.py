"""Write the API's OpenAPI document (generated from the contract's models) to docs/openapi.json.

python scripts/export_openapi.py [--check]     --check: exit 1 if docs/openapi.json is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vsr_client.openapi import build_openapi

TARGET = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def render() -> str:
    return json.dumps(build_openapi(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python scripts/export_openapi.py", file=sys.stderr)
            return 1
        return 0
    tmp = TARGET.with_name(f".{TARGET.name}.tmp")
    tmp.write_text(text)
    tmp.replace(TARGET)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
