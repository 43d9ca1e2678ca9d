"""Record a search for assets/runs/, the recordings Replay and Learn open on before any search has run.

    python scripts/record_example.py                       # runs the `demo` preset (minutes), then trims it
    python scripts/record_example.py --from runs/<run>     # trims a run that already finished
    python scripts/record_example.py --preset demo --name demo --set epochs=10
    python scripts/record_example.py --from runs/<run> --name collapse-darts --alphas-every 5
    python scripts/record_example.py --from runs/<rnn-demo run> --name rnn-demo --alphas-every 20   # recurrent
    python scripts/record_example.py --from runs/<demo run after derive --method pt> --name demo-pt --alphas-every 10

Keeps what the pages read (config.json, status.json, metrics.jsonl, alphas.jsonl, genotypes.jsonl); drops
the checkpoint, TensorBoard events, control files and exports, so a recording is a few hundred KB and
cannot be resumed. The status is rewritten without the recording machine's pid and host. `--alphas-every N`
keeps every N-th step's alphas (and the first and last), for a long run: the alphas are most of a recording's
size (500 steps of the demo network are 1.2 MB), while the metrics rows, which carry the collapse counts of
every step, are kept whole. Replay then moves N steps at a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.core.config import parse_overrides  # noqa: E402  (the repository root is on the path now)
from engine.runs import rundir  # noqa: E402
from engine.runs.examples import EXAMPLES_ROOT  # noqa: E402
from engine.search.config import SearchConfig, from_preset  # noqa: E402

KEEP = (rundir.CONFIG, rundir.METRICS, rundir.ALPHAS, rundir.GENOTYPES)
PT_ROWS = "pt.jsonl"  # engine.derive.rows.ROWS (scripts import no torch-loading module)


def thin_alphas(lines: list[str], every: int) -> list[str]:
    """Every `every`-th step's alphas lines, plus the first and the last."""
    return [line for i, line in enumerate(lines)
            if i in (0, len(lines) - 1) or json.loads(line).get("step", i) % every == 0]


def trim(source: Path, name: str, alphas_every: int = 1) -> Path:
    target = EXAMPLES_ROOT / f"{source.name.split('-', 1)[0]}-example-{name}"
    return trim_into(source, target, alphas_every)


def trim_into(source: Path, target: Path, alphas_every: int = 1) -> Path:
    """Copy what the pages read of the finished run `source` into `target` (replaced if it exists)."""
    status = rundir.read_status(source)
    if status.get("state") != "finished":
        raise SystemExit(f"{source} is {status.get('state')!r}; record a finished run")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for file in KEEP:
        if (source / file).exists():  # a training has no alphas
            shutil.copyfile(source / file, target / file)
    if (source / PT_ROWS).exists():  # DARTS-PT's decisions on this search (derive --method pt): the pages read them
        shutil.copyfile(source / PT_ROWS, target / PT_ROWS)
    if alphas_every > 1 and (source / rundir.ALPHAS).exists():
        lines = (source / rundir.ALPHAS).read_text().splitlines(keepends=True)
        (target / rundir.ALPHAS).write_text("".join(thin_alphas(lines, alphas_every)))
    kept = {k: v for k, v in status.items() if k not in ("pid", "host", "traceback")}
    (target / rundir.STATUS).write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", help="a finished run directory to trim instead of running one")
    p.add_argument("--preset", default="demo")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--name", default="demo")
    p.add_argument("--alphas-every", type=int, default=1, metavar="N",
                   help="keep every N-th step's alphas (and the first and last); default all")
    args = p.parse_args()
    if args.alphas_every < 1:
        p.error("--alphas-every must be at least 1")
    if args.source:
        print(trim(Path(args.source), args.name, args.alphas_every))
        return 0
    from engine.search.loop import run_search

    config = from_preset(args.preset, parse_overrides(args.set, SearchConfig))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = rundir.new_run_dir(tmp, f"{args.preset}-{config.dataset}")
        state = run_search(config, run_dir)
        if state != "finished":
            raise SystemExit(f"the search ended {state}")
        print(trim(run_dir, args.name, args.alphas_every))
    return 0


if __name__ == "__main__":
    sys.exit(main())
