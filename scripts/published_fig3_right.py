"""The authors' Fig. 3 (right) result pickles -> results/published/fig3_right_runs.csv.

    python scripts/published_fig3_right.py [--authors DIR] [--out CSV]

The pickles (results/published/authors/, copied from github.com/jxbz/nero; the folder's README
names the commit) were written by the authors' mnist/100_layer_mlp.py: a dict
(optimiser, initial lr, seed) -> (training accuracy of each epoch, final test accuracy). Every run
of both files becomes 50 rows (one per epoch), the test accuracy repeated on each. Floats are
written as Python's repr, so the CSV holds exactly the pickles' values.

The pickles are read by an unpickler that builds only dicts, lists, tuples, strings and numbers
(a pickle that names any class or function is refused), so a crafted file cannot run code.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import pickle
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUTHORS = REPO / "results" / "published" / "authors"
OUT = REPO / "results" / "published" / "fig3_right_runs.csv"
SOURCES = ("100-layer-lr-search.p", "100-layer-3-seeds.p")  # the lr search, then the seeds
COLUMNS = ["source", "optimizer", "lr", "seed", "epoch", "train_acc", "test_acc"]

Runs = dict[tuple[str, float, int], tuple[list[float], float]]


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"refers to {module}.{name}; only plain data is allowed")


def load(path: Path) -> Runs:
    """One of the authors' pickles, checked to be {(opt, lr, seed): ([train acc...], test acc)}."""
    try:
        data = _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a plain-data pickle ({e})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty dict of runs, got {type(data).__name__}")
    for k, v in data.items():
        ok_key = (isinstance(k, tuple) and len(k) == 3 and isinstance(k[0], str)
                  and isinstance(k[1], float) and type(k[2]) is int)
        ok_value = (isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], list) and v[0]
                    and all(type(a) is float for a in v[0]) and type(v[1]) is float)
        if not (ok_key and ok_value):
            raise ValueError(f"{path}: run {k!r} is not (opt, lr, seed) -> ([train acc per epoch], "
                             "test acc)")
    return data


def rows(source: str, runs: Runs) -> list[list[str]]:
    return [[source, opt, repr(lr), str(seed), str(epoch), repr(acc), repr(test)]
            for (opt, lr, seed), (train, test) in runs.items()
            for epoch, acc in enumerate(train, start=1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--authors", type=Path, default=AUTHORS, help="folder with the pickles")
    parser.add_argument("--out", type=Path, default=OUT, help="the CSV to write")
    args = parser.parse_args(argv)
    table: list[list[str]] = []
    for name in SOURCES:
        path = args.authors / name
        if not path.is_file():
            print(f"error: {path} is missing; copy {name} from github.com/jxbz/nero "
                  "(mnist/results/) into that folder", file=sys.stderr)
            return 1
        try:
            table += rows(name, load(path))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # written beside the target and renamed: never a half-written CSV
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=".fig3_right_runs.")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(table)
        os.replace(tmp, args.out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    n_runs = len({tuple(r[:4]) for r in table})
    print(f"{n_runs} runs, {len(table)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
