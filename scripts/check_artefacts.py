"""Check that an artefacts folder holds every artefact of the paper, each file non-empty, and
that its claims file gives every claim of the paper a verdict.

    python scripts/check_artefacts.py results/demo/artefacts

Exit status 1 (with one line per missing or empty file) otherwise. CI runs it after `make demo`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.analysis.claims import unlisted
from tasks.analysis.registry import ARTEFACTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the artefacts folder, e.g. results/demo/artefacts")
    root = parser.parse_args(argv).folder
    bad = [f"{name}/{f}" for name, artefact in ARTEFACTS.items() for f in artefact.files
           if not (root / name / f).is_file() or (root / name / f).stat().st_size == 0]
    for path in bad:
        print(f"missing or empty: {root / path}", file=sys.stderr)
    total = sum(len(a.files) for a in ARTEFACTS.values())
    print(f"{total - len(bad)} of {total} artefact files present in {root}")
    claims = unlisted(root / "claims")
    for key in claims:
        print(f"no verdict for claim {key} in {root / 'claims' / 'claims.csv'}", file=sys.stderr)
    return 1 if bad or claims else 0


if __name__ == "__main__":
    sys.exit(main())
