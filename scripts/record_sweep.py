"""Record a finished sweep for assets/sweeps/, the sweeps the Sweeps page and the Learn page open on a fresh machine.

    python -m engine sweep --preset collapse --grid variant=darts,beta_darts --seeds 4 --jobs 2 --name collapse-4x2
    python scripts/record_sweep.py --from runs/sweeps/collapse-4x2 --name collapse --alphas-every 20

Keeps sweep.json and outcomes.json, and each member (and trained cell) trimmed as scripts/record_example.py
trims a run: config, status, metrics, genotypes and every N-th step's alphas; no checkpoints, logs or
TensorBoard events, so a recorded sweep can be read and replayed, not resumed. Every member must have finished.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from record_example import trim_into  # noqa: E402  (this script's folder is on the path)

from engine.runs.examples import SWEEPS_ROOT  # noqa: E402
from engine.sweep.run import OUTCOMES, member_states  # noqa: E402
from engine.sweep.spec import SWEEP_FILE, SweepError, load_sweep  # noqa: E402


def record(source: Path, name: str, alphas_every: int, root: Path = SWEEPS_ROOT) -> Path:
    try:
        sweep = load_sweep(source)
    except SweepError as e:
        raise SystemExit(str(e)) from None
    unfinished = {m: s for m, s in member_states(sweep).items() if s != "finished"}
    if unfinished:
        raise SystemExit("record a finished sweep; not finished: "
                         + ", ".join(f"{m} ({s})" for m, s in sorted(unfinished.items())))
    target = root / name
    root.mkdir(parents=True, exist_ok=True)
    # built beside the target and renamed into place, so a failed recording leaves the old one whole
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        staged = Path(tmp) / name
        staged.mkdir()
        for file in (SWEEP_FILE, OUTCOMES):
            if (source / file).exists():
                shutil.copyfile(source / file, staged / file)
        for member in sweep.members + sweep.trainings:
            run_dir = sweep.run_dir(member)
            trim_into(run_dir, staged / run_dir.relative_to(source), alphas_every)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", required=True, help="a finished sweep directory")
    p.add_argument("--name", required=True, help="the recording's folder name under assets/sweeps/")
    p.add_argument("--into", type=Path, default=SWEEPS_ROOT, metavar="DIR",
                   help="where the recording goes (default: assets/sweeps/, which the pages read)")
    p.add_argument("--alphas-every", type=int, default=20, metavar="N",
                   help="keep every N-th step's alphas of each member (and its first and last); default 20")
    args = p.parse_args()
    if args.alphas_every < 1:
        p.error("--alphas-every must be at least 1")
    if Path(args.name).name != args.name or args.name in ("", ".", ".."):
        p.error("--name must be a plain folder name")
    print(record(Path(args.source), args.name, args.alphas_every, args.into))
    return 0


if __name__ == "__main__":
    sys.exit(main())
