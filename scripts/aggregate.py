"""Records -> Table 1 (Markdown, CSV, LaTeX), the appendix table, figures and a performance profile.

    python scripts/aggregate.py RESULTS_DIR [--out DIR] [--sweep table1]
    python scripts/aggregate.py --wandb ENTITY/PROJECT --out DIR

RESULTS_DIR is searched recursively for record.json files (see tasks/runner/records.py). With --wandb,
the records are read from the runs of a W&B project instead (each run's summary holds its record).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tasks.analysis import tables as aggregate
from tasks.runner import records


def from_wandb(path: str) -> list[dict[str, Any]]:
    import wandb

    out = []
    for run in wandb.Api().runs(path):
        text = run.summary.get("nero_record")
        if text:
            out.append(json.loads(text))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", help="directory holding record.json files")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read records from W&B instead")
    parser.add_argument("--out", help="where to write tables and figures (default: RESULTS_DIR)")
    parser.add_argument("--sweep", default="table1", help="sweep name of the Table 1 records")
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)
    if not args.results and not args.wandb:
        parser.error("give RESULTS_DIR or --wandb ENTITY/PROJECT")
    if args.results and not Path(args.results).is_dir():
        print(f"error: {args.results} is not a directory of results", file=sys.stderr)
        return 2
    found = from_wandb(args.wandb) if args.wandb else list(records.find(args.results))
    out = Path(args.out or args.results or ".")
    out.mkdir(parents=True, exist_ok=True)
    if not found:
        print(f"error: no records found in {args.wandb or args.results}", file=sys.stderr)
        return 2
    table = aggregate.table1([r for r in found if r.get("sweep") == args.sweep])
    (out / "table1.md").write_text(aggregate.table1_markdown(table))
    aggregate.write_csv(out / "table1.csv", aggregate.table1_rows(table))
    (out / "table1.tex").write_text(aggregate.table1_latex(table))
    written = ["table1.md", "table1.csv", "table1.tex"]
    if any(r.get("sweep") in ("fig1", "fig2") for r in found):
        rows, text = aggregate.appendix(found)
        (out / "appendix_a.md").write_text(text)
        aggregate.write_csv(out / "appendix_a.csv", rows)
        written += ["appendix_a.md", "appendix_a.csv"]
    taus = [1.0 + 0.05 * i for i in range(181)]  # 1 ... 10
    profile = aggregate.performance_profile(table, taus)
    if not args.no_figures:
        from tasks.analysis import figures

        fig_dir = out / "figures"
        paths = figures.learning_curves(table, fig_dir) + figures.lr_sensitivity(table, fig_dir)
        paths += figures.profile_plot(profile, taus, fig_dir)
        written.append(f"figures/ ({len(paths)} files)")
    print(aggregate.table1_markdown(table))
    print(f"wrote {', '.join(written)} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
