"""Check that an artefacts folder holds every artefact of the paper, each file non-empty, and
that its claims file gives every claim of the paper a verdict.

    python scripts/check_artefacts.py results/demo/artefacts

Exit status 1 (with one line per missing or empty file) otherwise. CI runs it after `make demo`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.analysis.artefacts import ARTEFACTS, expected_files
from tasks.analysis.claims import unlisted


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root = Path(args[0])
    bad = [f"{name}/{f}" for name in ARTEFACTS for f in expected_files(name)
           if not (root / name / f).is_file() or (root / name / f).stat().st_size == 0]
    for path in bad:
        print(f"missing or empty: {root / path}", file=sys.stderr)
    total = sum(len(expected_files(n)) for n in ARTEFACTS)
    print(f"{total - len(bad)} of {total} artefact files present in {root}")
    claims = unlisted(root / "claims")
    for key in claims:
        print(f"no verdict for claim {key} in {root / 'claims' / 'claims.csv'}", file=sys.stderr)
    return 1 if bad or claims else 0


if __name__ == "__main__":
    sys.exit(main())
