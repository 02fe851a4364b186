"""The `stair` command: query artifacts with SQL, try a model by hand, evaluate a model on a file, pull a
published dataset, switch params to a profile.

Bad input (a malformed file, a missing model, an offline Hub id, a folder `--out` must not replace) ends
with one line naming what is wrong and exit status 1; `--debug` shows the traceback instead.
"""

import argparse
import sys
from pathlib import Path

from stair.columns import PROMPT_COLUMNS, check_fields
from stair.data import MAX_RECORD_CHARS
from stair.errors import ArtifactError, HubUnavailable, ParamsError
from stair.hub.refs import hub_offline
from stair.profiles import PARAMS, PROFILES
from stair.store import check_replaceable, connect, find_artifacts, pipeline_outputs

# What a user can get wrong; anything else is a bug and keeps its traceback.
USER_ERRORS = (ArtifactError, HubUnavailable, ParamsError)


def _views_help(root: Path) -> str:
    artifacts = find_artifacts(root)
    if not artifacts:
        return f"(no artifacts under {root} yet: run `dvc repro`)"
    names = sorted({*artifacts, *("_".join(f.relative_to(root).parts[:-1]) for f in artifacts.values())} - {""})
    return "views: " + ", ".join(names)


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb
    import pyarrow as pa

    try:
        con = connect(args.root)
    except (duckdb.Error, pa.ArrowException, OSError) as err:
        raise ArtifactError(f"{args.root}: the artifacts could not be opened as views ({err})") from err
    try:
        relation = con.sql(args.sql)
    except duckdb.PermissionException as err:
        print(f"error: {err}\nstair query is read-only: it reads the artifacts' views and nothing else "
              f"(no writing, COPY ... TO, ATTACH, INSTALL/LOAD or other files)\n{_views_help(args.root)}",
              file=sys.stderr)
        return 1
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


def cmd_generate(args: argparse.Namespace) -> int:
    from stair.format import parse_response
    from stair.prm import PRMScorer
    from stair.search import SearchParams, run_search

    backend = _load_backend(args.model, args.seed)
    scorer = _loaded(args.prm, PRMScorer.from_path) if args.prm else None
    if args.search != "greedy" and scorer is None:
        print("error: --search bon/beam needs --prm PATH", file=sys.stderr)
        return 2
    (found,) = run_search(args.search, backend, scorer, [args.prompt], args.width, SearchParams())
    print(found.response)
    if args.verbose:
        parsed = parse_response(found.response)
        print(f"\n[{found.n_tokens} tokens generated; format ok: {parsed.format_ok}; issues: {parsed.issues}]")
        if scorer is not None:
            (scores,) = scorer.score([args.prompt], [found.response])
            for step, score in zip([s.title or "(untitled)" for s in parsed.steps] + ["output"], scores):
                print(f"  PRM {score:.3f}  {step}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _check_out(out: Path, row_type, stage: str, force: bool) -> None:
    """Refuse an --out folder whose contents this command did not write (see `check_replaceable`)."""
    check_replaceable(out, row_type, stage, force=force, protected=pipeline_outputs(Path.cwd()))


def _model_path(model: Path) -> Path:
    if not model.exists() and hub_offline():
        raise ArtifactError(f"{model}: no such model folder (the Hub is offline, so it is not tried as a model id)")
    if model.exists() and not (model / "config.json").is_file():
        raise ArtifactError(f"{model}: not a model folder (no config.json; a save_pretrained folder is expected)")
    return model


def _load_backend(model: Path, seed: int):
    from stair.generation import BackendParams, make_backend

    return _loaded(model, lambda path: make_backend(path, BackendParams(), seed=seed))


def _loaded(model: Path, load):
    """`load(model)` for a model folder or id; any failure inside the loader (no tokenizer, corrupt weights, not
    a valid model id) is one ArtifactError naming the folder (`--debug` shows the loader's traceback)."""
    try:
        return load(_model_path(model))
    except USER_ERRORS:
        raise
    except Exception as err:
        raise ArtifactError(f"{model}: could not load the model ({type(err).__name__}: {err})") from err


def _columns(text: str) -> dict:
    """'text=prompt,expected_behavior=label' -> {'text': 'prompt', 'expected_behavior': 'label'}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError("columns look like field=column,field=column")
    try:
        check_fields(dict(pairs), PROMPT_COLUMNS, "--columns")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return dict(pairs)


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from schemas import EvalRecord
    from stair.evaluation import add_goodness, evaluate_greedy, summarize
    from stair.judges import JudgeParams, make_judge
    from stair.reward import RewardParams
    from stair.store import write_artifact
    from stair.suites import LOADERS, SOURCES, default_source, load_benchmark

    if args.out:
        _check_out(args.out, EvalRecord, "stair eval", args.force)
    loader = args.suite if args.suite in LOADERS and not args.columns else "generic"
    options = {"columns": args.columns, "suite": args.suite} if loader == "generic" else {}
    if not args.path and loader not in SOURCES:
        raise ParamsError(f"stair eval: suite {args.suite!r} has no default source; give --path (known: {sorted(SOURCES)})")
    source = args.path or default_source(loader)
    prompts = load_benchmark(loader, source, limit=args.limit, seed=args.seed, max_record_chars=args.max_chars,
                             **options)
    prompts = [p.model_copy(update={"split": args.suite}) for p in prompts]
    backend = _load_backend(args.model, args.seed)
    judge = make_judge(JudgeParams(), RewardParams())  # rule judges: refusal detection, exact answers
    records = evaluate_greedy(backend, backend.tokenizer, prompts, judge, Path(args.model).name,
                              suite_of=lambda p: p.split)
    summary = summarize(records)
    add_goodness(summary, records, "refusal")
    if args.out:
        write_artifact(args.out, records, EvalRecord, stage="stair eval",
                       params={"suite": args.suite, "path": source, "limit": args.limit},
                       inputs=[Path(source)] if Path(source).exists() else [])
    print(json.dumps(summary, indent=2))
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from schemas import ROW_TYPES
    from stair.hub.pull import pull_to_artifact
    from stair.hub.refs import HubRef

    if not args.repo_id.strip():
        raise ParamsError("stair pull: give a Hub dataset id or a published folder, not an empty name")
    if Path(args.repo_id).exists():  # a published folder on disk
        source = f"{args.repo_id}:{args.config}" if args.config else args.repo_id
    else:
        source = HubRef(args.repo_id, args.config, args.revision)
    row_type = ROW_TYPES[args.row_type] if args.row_type else None
    _check_out(args.out, row_type, "pull", args.force)  # no row type given: any earlier pull may be replaced
    manifest = pull_to_artifact(source, args.out, row_type)
    print(f"{manifest.rows} {manifest.row_type} rows -> {args.out} (revision {manifest.extra.get('hub_revision')})")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from stair.profiles import apply_profile, available, load_profile, merge

    if args.list or not args.names:
        for name in available(args.folder):
            print(name)
        return 0
    settings: dict = {}
    for name in args.names:
        settings = merge(settings, load_profile(name, args.folder))
    changes = apply_profile(settings, args.params)
    print("\n".join(changes) if changes else f"{args.params} already has every value of {' + '.join(args.names)}")
    print(f"{len(changes)} value(s) changed in {args.params} (undo: git checkout {args.params})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stair", description="STAIR pipeline tools")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error")
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
    query.add_argument("--max-rows", type=_positive_int, default=40)
    query.add_argument("--max-width", type=_positive_int, default=160)
    query.set_defaults(func=cmd_query)

    generate = sub.add_parser("generate", help="answer one prompt with a model (optionally PRM-guided search)")
    generate.add_argument("prompt")
    generate.add_argument("--model", required=True, type=Path)
    generate.add_argument("--prm", type=Path)
    generate.add_argument("--search", choices=["greedy", "bon", "beam"], default="greedy")
    generate.add_argument("--width", type=_positive_int, default=4, help="N for best-of-N, beam width for beam")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--verbose", action="store_true", help="show the PRM score of every step")
    generate.set_defaults(func=cmd_generate)

    evaluate = sub.add_parser("eval", help="evaluate one model on one benchmark file, outside the pipeline",
                              epilog="example: stair eval --model models/sft --suite mine --path my.jsonl "
                                     "--columns text=question,expected_behavior=should")
    evaluate.add_argument("--model", required=True, type=Path)
    evaluate.add_argument("--suite", required=True, help="a known benchmark (xstest, advbench, harmbench, "
                          "strongreject, gsm8k, math500) or any name together with --columns")
    evaluate.add_argument("--path", default="", help="a local file or hub:<repo_id>[:<config>][@<revision>]; "
                          "default for a known benchmark: its copy in stair/benchdata, else its Hub dataset")
    evaluate.add_argument("--columns", type=_columns, default=None,
                          help="field=column pairs for a file in another layout (fields: text, kind, "
                          "expected_behavior, ground_truth, category, id)")
    evaluate.add_argument("--limit", type=_positive_int, help="a seeded sample of this many rows")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--max-chars", type=_positive_int, default=MAX_RECORD_CHARS,
                          help="refuse a record longer than this (characters over all its fields)")
    evaluate.add_argument("--out", type=Path, help="also write the judged records as an artifact folder (an "
                          "absent or empty folder, or an earlier `stair eval --out`; never a pipeline output)")
    evaluate.add_argument("--force", action="store_true", help="let --out replace a folder of anything else")
    evaluate.set_defaults(func=cmd_eval)

    pull = sub.add_parser("pull", help="download a published dataset config, validate every row, save it as an "
                          "artifact (the resolved revision goes into its manifest)")
    pull.add_argument("repo_id", help="a Hub dataset id, or a local published folder")
    pull.add_argument("--config", help="e.g. pairs_1, sft, prompts")
    pull.add_argument("--revision")
    pull.add_argument("--row-type", choices=["SeedPrompt", "SFTExample", "TreeNode", "StepPair", "PRMExample",
                                             "EvalRecord"], help="default: inferred from the columns and names")
    pull.add_argument("--out", type=Path, required=True, help="an absent or empty folder, or an earlier pull "
                      "(never a pipeline output)")
    pull.add_argument("--force", action="store_true", help="let --out replace a folder of anything else")
    pull.set_defaults(func=cmd_pull)

    profile = sub.add_parser("profile", help="write a named set of params (profiles/<name>.yaml) into params.yaml",
                             epilog="example: stair profile paper-llama-3.1-8b && dvc repro")
    profile.add_argument("names", nargs="*", help="profiles to apply, in order (later ones win)")
    profile.add_argument("--list", action="store_true", help="list the profiles")
    profile.add_argument("--folder", type=Path, default=PROFILES)
    profile.add_argument("--params", type=Path, default=PARAMS)
    profile.set_defaults(func=cmd_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
