"""Command line: ``tdsae book`` runs the book; ``tdsae presets`` prints the preset table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .book import ChapterFailed, NotExecuted, build_book, notebooks_with_checked_cells, require_book_tools
from .presets import PRESETS, preset_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdsae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="execute the chapters and build the HTML book")
    book.add_argument("--preset", default="tiny", help=f"one of: {', '.join(PRESETS)}")
    book.add_argument("--seed", type=int, default=None, help="master seed for every chapter (default: the preset's)")
    book.add_argument("--chapters", nargs="*", help="execute only chapters whose slug starts with these")
    book.add_argument("--no-execute", action="store_true", help="build from the notebooks already executed")
    book.add_argument("--root", type=Path, default=Path("."), help="directory holding _toc.yml")
    book.add_argument("--jobs", default="auto",
                      help="chapters executed at once, each once the chapters it reads have finished; 'auto' "
                           "(default): 2 on a machine with 2 cores or more, else 1")
    checked = sub.add_parser("checked-notebooks", help="list the executed chapters whose outputs nbval compares")
    checked.add_argument("--root", type=Path, default=Path("."), help="directory holding _toc.yml")
    sub.add_parser("presets", help="print the preset table")
    claims = sub.add_parser("claims", help="summarise _build/claims.json")
    claims.add_argument("--root", type=Path, default=Path("."))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tdsae`` command."""
    args = _parser().parse_args(argv)
    if args.command == "book":

        try:
            jobs = int(args.jobs) if str(args.jobs).isdigit() else args.jobs
            index = build_book(args.root, preset=args.preset, seed=args.seed,
                               chapters=args.chapters, execute=not args.no_execute, jobs=jobs)
        except (ChapterFailed, NotExecuted, ValueError, FileNotFoundError, RuntimeError) as err:
            print(f"tdsae book: {err}", file=sys.stderr)
            return 1
        print(f"built {index}")
        return 0
    if args.command == "checked-notebooks":

        try:
            require_book_tools()
            paths = notebooks_with_checked_cells(args.root.resolve())
        except (NotExecuted, FileNotFoundError, RuntimeError) as err:
            print(f"tdsae checked-notebooks: {err}", file=sys.stderr)
            return 1
        print("\n".join(str(p.relative_to(args.root.resolve())) for p in paths))
        return 0
    if args.command == "presets":

        print(preset_table().to_string())
        return 0
    path = args.root / "_build" / "claims.json"
    try:
        records = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"tdsae claims: cannot read {path} ({err}); build the book first (tdsae book)", file=sys.stderr)
        return 1
    for r in records:
        verdict = "not measured" if not r.get("measured", True) else "holds" if r["holds"] else "does not hold"
        print(f"{r['chapter']:<32} {r['kind']:<8} {r['name']:<36} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
