"""What a sweep is: a preset, fixed overrides, a grid of settings and a number of seeds, expanded to members.

Each member is one ordinary search (its own run directory under the sweep's `members/`), so follow, replay,
resume and export work on it as on any run. An optional second stage trains every found cell with a training
preset (and, as baselines, DARTS_V2 and N random cells): those are ordinary training runs under `trained/`.
`sweep.json` names the members and their settings; it is written once, when the sweep is created, and never
again: a member's state lives in its own status.json.

Every member's config is built and validated before anything starts, so a value that fails validation is
reported with the member and the combination it belongs to, and nothing is written.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.atomic import write_json_atomic
from engine.core.config import ConfigError, parse_overrides
from engine.search.config import PRESETS, SearchConfig, from_preset

__all__ = ["SWEEP_FILE", "MEMBERS", "SweepError", "Member", "Sweep", "parse_grid", "create_sweep", "load_sweep"]

SWEEP_FILE = "sweep.json"
MEMBERS = "members"
TRAINED = "trained"
FORMAT = "dartboard-sweep/1"
_NAME = re.compile(r"[A-Za-z0-9._=+-]{1,200}")  # what _expand and _trainings produce: no separator, no space


class SweepError(ValueError):
    """A sweep that cannot be built or read, with the reason in one line."""


@dataclass(frozen=True)
class Member:
    name: str
    settings: dict[str, Any]   # the grid's values for this member, seed included (a training: its cell's)
    overrides: dict[str, Any]  # everything applied on top of the preset: fixed overrides, settings, seed
    kind: str = "search"       # or "train": the second stage
    source: str = ""           # a training's genotype: a search member's name, DARTS_V2 or random:SEED

    @property
    def group(self) -> tuple[tuple[str, Any], ...]:
        """The member's settings without its seed: members of one group differ only by the seed."""
        return tuple((k, v) for k, v in self.settings.items() if k != "seed")


@dataclass(frozen=True)
class Sweep:
    path: Path
    preset: str
    sets: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: list[int]
    members: list[Member] = field(default_factory=list)
    trainings: list[Member] = field(default_factory=list)
    train_preset: str | None = None

    def member(self, name: str) -> Member:
        for m in self.members + self.trainings:
            if m.name == name:
                return m
        raise SweepError(f"sweep {self.path} has no member {name!r}; its members: "
                         f"{', '.join(m.name for m in self.members + self.trainings)}")

    def run_dir(self, member: Member | str) -> Path:
        m = self.member(member) if isinstance(member, str) else member
        return self.path / (TRAINED if m.kind == "train" else MEMBERS) / m.name

    def config(self, member: Member) -> Any:
        """A search member's SearchConfig, a training's TrainConfig."""
        if member.kind == "train":
            from engine.train.config import from_train_preset

            return from_train_preset(self.train_preset or "", member.overrides)
        return from_preset(self.preset, member.overrides)


def parse_grid(pairs: list[str]) -> dict[str, list[Any]]:
    """`--grid KEY=V1,V2,...` (repeatable) -> {KEY: [V1, V2, ...]}, each value read as `--set` reads one."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SweepError(f"--grid {pair!r}: expected KEY=VALUE1,VALUE2,...")
        if key == "seed":
            raise SweepError("--grid seed=...: seeds are given with --seeds N (and --first-seed)")
        if key in grid:
            raise SweepError(f"--grid {key} is given twice")
        texts = [t.strip() for t in text.split(",")]
        if not any(texts):
            raise SweepError(f"--grid {key}= has no values")
        values = [parse_overrides([f"{key}={t}"], SearchConfig)[key] for t in texts if t]
        if len(set(map(repr, values))) != len(values):
            raise SweepError(f"--grid {key} repeats a value: {text}")
        grid[key] = values
    return grid


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_")[:40] or "x"


def _expand(preset: str, sets: dict[str, Any], grid: dict[str, list[Any]], seeds: list[int]) -> list[Member]:
    if preset not in PRESETS:
        raise SweepError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    if not seeds:
        raise SweepError("--seeds must be at least 1")
    clash = sorted(set(sets) & set(grid))
    if clash:
        raise SweepError(f"{clash[0]} is both fixed with --set and varied with --grid")
    members = []
    keys = list(grid)
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys), seeds)):
        settings = {**dict(zip(keys, combo[:-1], strict=True)), "seed": combo[-1]}
        overrides = {**sets, **settings}
        name = f"{i:03d}-" + "-".join(f"{_slug(k)}={_slug(v)}" for k, v in settings.items())
        member = Member(name, settings, overrides)
        try:
            from_preset(preset, overrides)
        except ConfigError as e:
            combination = ", ".join(f"{k}={v!r}" for k, v in settings.items())
            raise SweepError(f"member {name} ({combination}): {e}") from None
        members.append(member)
    return members


def _trainings(members: list[Member], preset: str, sets: dict[str, Any], baseline: bool,
               random_cells: int) -> list[Member]:
    from engine.train.config import TrainConfig, from_train_preset

    try:
        from_train_preset(preset, sets)
    except ConfigError as e:
        raise SweepError(f"--train {preset}: {e}") from None
    bad = sorted(set(sets) - set(TrainConfig.known_keys()))
    if bad:
        raise SweepError(f"--train-set {bad[0]}: not a training field")
    if random_cells < 0:
        raise SweepError(f"--random must be 0 or more, not {random_cells}")
    out = [Member(f"train-{m.name}", {**m.settings, "cell": "found"}, dict(sets), "train", m.name) for m in members]
    if baseline:
        out.append(Member("train-DARTS_V2", {"cell": "DARTS_V2"}, dict(sets), "train", "DARTS_V2"))
        out += [Member(f"train-random-{s}", {"cell": "random", "seed": s}, dict(sets), "train", f"random:{s}")
                for s in range(random_cells)]
    return out


def create_sweep(root: str | os.PathLike, name: str, preset: str, sets: dict[str, Any], grid: dict[str, list[Any]],
                 seeds: int, first_seed: int = 0, backend: str = "local", train: str | None = None,
                 train_sets: dict[str, Any] | None = None, baseline: bool = False, random_cells: int = 2) -> Sweep:
    """Validate every member (and, with `train`, the training preset), then create `root/name` with sweep.json
    (refused if it exists). Nothing is written when a member's config is refused."""
    if seeds < 1:
        raise SweepError("--seeds must be at least 1")
    seed_list = list(range(first_seed, first_seed + seeds))
    members = _expand(preset, sets, grid, seed_list)
    if baseline and not train:
        raise SweepError("--baseline trains DARTS_V2 and random cells: it needs --train PRESET")
    trainings = _trainings(members, train, train_sets or {}, baseline, random_cells) if train else []
    path = Path(root) / name
    if path.exists():
        raise SweepError(f"{path} exists; resume it with --resume {path} or choose another --name")
    (path / MEMBERS).mkdir(parents=True)
    record = {"format": FORMAT, "kind": "sweep", "preset": preset, "sets": sets, "grid": grid, "seeds": seed_list,
              "backend": backend, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
              "members": [{"name": m.name, "settings": m.settings, "overrides": m.overrides} for m in members],
              "train_preset": train,
              "trainings": [{"name": m.name, "settings": m.settings, "overrides": m.overrides, "source": m.source}
                            for m in trainings]}
    write_json_atomic(path / SWEEP_FILE, record)
    return Sweep(path, preset, sets, grid, seed_list, members, trainings, train)


def _member_name(name: Any) -> str:
    """A member's name is a folder inside the sweep directory: a damaged or hostile sweep.json must not lead a
    reader (or a resume, which writes there) out of it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"member name {str(name)[:60]!r} is not a plain folder name")
    return name


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read a sweep directory's sweep.json (a SweepError naming what is wrong otherwise)."""
    path = Path(path)
    try:
        record = json.loads((path / SWEEP_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path} is not a sweep directory (no {SWEEP_FILE})") from None
    except (OSError, ValueError, RecursionError) as e:
        raise SweepError(f"{path / SWEEP_FILE} is not readable: {type(e).__name__}") from None
    try:
        if record.get("format") != FORMAT:
            raise SweepError(f"{path / SWEEP_FILE} is not a {FORMAT} file")
        members = [Member(_member_name(m["name"]), dict(m["settings"]), dict(m["overrides"]))
                   for m in record["members"]]
        trainings = [Member(_member_name(m["name"]), dict(m["settings"]), dict(m["overrides"]), "train",
                            str(m["source"])) for m in record.get("trainings", [])]
        return Sweep(path, str(record["preset"]), dict(record["sets"]), dict(record["grid"]),
                     [int(s) for s in record["seeds"]], members, trainings, record.get("train_preset"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SweepError(f"{path / SWEEP_FILE} is damaged ({type(e).__name__}: {e})"[:300]) from None
