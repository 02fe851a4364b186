"""The `stair` command: query artifacts with SQL, and (more subcommands) try models by hand."""

import argparse
import sys
from pathlib import Path

from stair.store import connect, find_artifacts


def _views_help(root: Path) -> str:
    artifacts = find_artifacts(root)
    if not artifacts:
        return f"(no artifacts under {root} yet: run `dvc repro`)"
    names = sorted({*artifacts, *("_".join(f.relative_to(root).parts[:-1]) for f in artifacts.values())} - {""})
    return "views: " + ", ".join(names)


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    con = connect(args.root)
    try:
        relation = con.sql(args.sql)
    except duckdb.Error as err:
        print(f"error: {err}\n{_views_help(args.root)}", file=sys.stderr)
        return 1
    if relation is None:
        return 0
    if args.format == "csv":
        relation.df().to_csv(sys.stdout, index=False)
    else:
        relation.show(max_width=args.max_width, max_rows=args.max_rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stair", description="STAIR pipeline tools")
    sub = parser.add_subparsers(dest="command", required=True)
    root = Path("data")
    query = sub.add_parser(
        "query",
        help="run SQL over the pipeline's artifacts (DuckDB)",
        description="Run SQL over every artifact under --root; each is a view named by its folder "
        "(data/nodes/1 -> nodes_1) and artifacts in one folder are unioned (nodes, pairs, heldout). "
        + _views_help(root),
        epilog='example: stair query "select depth, avg(value) from nodes group by depth order by depth"',
    )
    query.add_argument("sql")
    query.add_argument("--root", type=Path, default=root)
    query.add_argument("--format", choices=["table", "csv"], default="table")
    query.add_argument("--max-rows", type=int, default=40)
    query.add_argument("--max-width", type=int, default=160)
    query.set_defaults(func=cmd_query)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
