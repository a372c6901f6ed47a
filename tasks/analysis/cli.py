"""Records -> every artefact of the paper they allow (tables, figures, comparisons).

    python scripts/aggregate.py RESULTS_DIR [--out DIR] [--only fig3_left,table1]
    python scripts/aggregate.py RESULTS_DIR --optimizers nero,adam,adamw,lion
    python scripts/aggregate.py RESULTS_DIR --variant task.epochs=3
    python scripts/aggregate.py --wandb ENTITY/PROJECT --out DIR

RESULTS_DIR is searched recursively for record.json files (tasks/runner/records.py). With
--wandb the records are read from a W&B project instead (each run's summary holds its record).
Each artefact gets a folder under --out (default RESULTS_DIR/artefacts); records of several
scales give one set of artefacts per scale, never a mix. One line per artefact says what was
written, what was drawn without (missing curves) or why it was skipped; one line lists the
records that were ignored and why. ``--optimizers`` picks the columns of Table 1 and the curves
of the Table 1 figures (the paper's four by default); one the paper did not run is marked †, and
the performance profile is taken over the chosen set. ``--variant`` draws every artefact from
the runs that differ from what it would use by those settings (a shortened sweep, say); their
captions then name the settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from tasks.analysis.registry import ARTEFACTS, USED_SWEEPS
from tasks.analysis.selection import Records
from tasks.analysis.tables import TABLE1_OPTIMIZERS
from tasks.errors import UserError
from tasks.runner import identity, records
from tasks.runner.records import Record


def from_wandb(path: str, problems: list[str]) -> list[Record]:
    import wandb

    out = []
    for run in wandb.Api().runs(path):
        text = run.summary.get("nero_record")
        if text:
            try:
                out.append(Record.from_json(json.loads(text)))
            except ValueError as err:
                problems.append(f"W&B run {run.id} is not a usable record ({err})")
    return out


def parse_variant(text: str | None) -> dict[str, Any]:
    """``task.epochs=3,optimizer.beta=0.9`` -> {"task.epochs": 3, "optimizer.beta": 0.9}, the
    values read as YAML, as Hydra reads overrides."""
    shift: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{item!r} is not KEY=VALUE (e.g. task.epochs=3)")
        shift[name.strip()] = yaml.safe_load(value)
    return shift


def unusable(record: Record) -> str | None:
    """Why a record cannot be aggregated, or None. Its identity fields name folders and columns:
    the reader checked them as a run does (a plain folder name, lr > 0, a seed), so that
    ``scale: ../../elsewhere`` never puts artefacts outside --out; here its config."""
    if record.defect is not None:
        return record.defect
    try:
        identity.computing(record.config or {})
    except UserError as err:
        return str(err)
    except RecursionError:
        return "its config is nested too deeply to be a run's config"
    return None


def usable(found: list[Record], problems: list[str]) -> list[Record]:
    """The records that may be aggregated; one line in ``problems`` for each other one."""
    kept = []
    for record in found:
        why = unusable(record)
        if why is None:
            kept.append(record)
        else:
            problems.append(f"{record.path or 'a record'} is not a usable record ({why})")
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", help="directory holding record.json files")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read records from W&B instead")
    parser.add_argument("--out", help="where artefacts go (default: RESULTS_DIR/artefacts)")
    parser.add_argument("--only", help=f"comma-separated artefacts among {', '.join(ARTEFACTS)}")
    parser.add_argument("--optimizers", default=",".join(TABLE1_OPTIMIZERS),
                        help="optimiser configs to compare (default: the paper's four)")
    parser.add_argument("--variant", metavar="KEY=VALUE[,KEY=VALUE]",
                        help="use the runs with these settings changed (e.g. task.epochs=3)")
    args = parser.parse_args(argv)
    try:
        shift = parse_variant(args.variant)
    except ValueError as err:
        print(f"error: --variant: {err}", file=sys.stderr)
        return 2
    if not args.results and not args.wandb:
        parser.error("give RESULTS_DIR or --wandb ENTITY/PROJECT")
    if args.results and not Path(args.results).is_dir():
        print(f"error: {args.results} is not a directory of results", file=sys.stderr)
        return 2
    wanted = args.only.split(",") if args.only else list(ARTEFACTS)
    unknown = [a for a in wanted if a not in ARTEFACTS]
    if unknown:
        print(f"error: unknown artefact {', '.join(unknown)}: choose from {', '.join(ARTEFACTS)}",
              file=sys.stderr)
        return 2
    problems: list[str] = []
    found = (from_wandb(args.wandb, problems) if args.wandb
             else list(records.find(args.results, problems)))
    found = usable(found, problems)
    if not found:
        for line in problems:
            print(f"ignored {line}")
        print(f"error: no records found in {args.wandb or args.results}", file=sys.stderr)
        return 2
    out = Path(args.out or Path(args.results or ".") / "artefacts")
    optimizers = tuple(o.strip() for o in args.optimizers.split(",") if o.strip())
    everything = Records(found, shift=shift)
    scales = everything.scales()
    written = 0
    for scale in scales:
        folder = out / scale if len(scales) > 1 else out
        rec = everything.of_scale(scale)
        for name in wanted:
            outcome = ARTEFACTS[name].make(rec, folder, optimizers)
            if outcome.skipped:
                print(f"skipped {name}{f' ({scale})' if len(scales) > 1 else ''}: {outcome.skipped}")
                continue
            written += 1
            without = f"; without {', '.join(outcome.missing)} (no records)" if outcome.missing else ""
            print(f"wrote   {name}: {', '.join(str(p.relative_to(out)) for p in outcome.files)}"
                  f"{without}")
        for note in rec.notes:
            print(f"note: {note}")
    other = Counter(r.sweep for r in found if r.sweep not in USED_SWEEPS)
    ignored = [f"{n} unreadable or unusable (above)" for n in [len(problems)] if n]
    ignored += [f"{n} of sweep {s!r}, which no artefact uses" for s, n in sorted(other.items())]
    for line in problems:
        print(f"ignored {line}")
    print(f"read {len(found)} records ({', '.join(scales)} scale)"
          + (f"; ignored {'; '.join(ignored)}" if ignored else ""))
    return 0 if written else 2


def write_artefacts(out: Path, failed: list[str], started: float, *options: str) -> int:
    """After the sweeps of scripts/reproduce.py: every artefact their records allow, then the exit
    status (1 when a sweep did not finish cleanly: running the same command again resumes or
    retries it)."""
    print(f"\n=== artefacts from {out} ({time.time() - started:.0f}s of sweeps)", flush=True)
    code = main([str(out), *options])
    if failed:
        print(f"error: the sweeps of {', '.join(failed)} did not finish cleanly; run the same "
              "command again to resume or retry them", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
