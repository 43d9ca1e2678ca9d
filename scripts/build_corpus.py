"""Build assets/corpus/kjv-nt/, the embedded text corpus, from the King James Version as Debian packages it.

    apt-get install bible-kjv                 # the `bible` reader; its data comes in bible-kjv-text
    python scripts/build_corpus.py            # [--out DIR]

Source: the New Testament of the King James Version (1611; public domain, see assets/README.md), decoded from
Debian's `bible-kjv-text` data by its own reader (`bible`, package `bible-kjv`, version 4.38): the data file is
in the Bible Retrieval System's compressed format, which only that program reads. The whole New Testament,
Matthew 1:1 to Revelation 22:21, one verse per line.

Prepared as Mikolov's Penn Treebank, the corpus of the paper's search (section 3.2): lower case, punctuation
removed (an apostrophe inside a word stays: "father's"), one sentence (here a verse) per line; the loader adds
<eos> and caps the vocabulary. Split by chapter, so a split is whole chapters of running text: of the New
Testament's 260 chapters in order, number c (from 0) goes to valid when c % 10 == 8, to test when
c % 10 == 9, to train otherwise (26 chapters each; the search's architecture steps read valid).

Each split is written as `<split>.txt.bz2`: bzip2's output is the same on every build of libbz2 1.0, so
building twice gives the same bytes. The text of each split is checked against TEXT_SHA256 below: a
different `bible` build or a changed rule fails the build instead of shipping other data.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "assets" / "corpus" / "kjv-nt"
RANGE = "Mat1:1-Rev22:21"
VERSES = 7957  # verses of the New Testament in the KJV; a different count means a different source
# sha256 of each split's decompressed text, as built from bible-kjv 4.38 by this rule.
TEXT_SHA256 = {
    "train": "dabe8631a3ce97e91c72c64aabed979a4421ebf7710fbdd93a59a7b8e457ece9",
    "valid": "36cb026fb75a1e9ba2ef3b7115fcd8e344518438e7e2da9dee3ab835427943aa",
    "test": "b2c1550a1760d6e2ab3754999b32359775cf7c24e4469fce29e561a62c128d95",
}
_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def read_verses(bible: str = "bible") -> list[tuple[str, int, str]]:
    """(book, chapter, text) of every verse, in order, as the `bible` reader prints them."""
    exe = shutil.which(bible)
    if exe is None:
        raise SystemExit("the `bible` reader is missing: apt-get install bible-kjv")
    # -f: one verse per line as "Mat1:1 text"; -l: no wrapping; -m: buffer (KiB) for a whole testament.
    out = subprocess.run([exe, "-m", "8192", "-f", "-l", "100000", RANGE], capture_output=True, text=True,
                         check=True).stdout
    verses = []
    for line in out.splitlines():
        if line.strip():
            m = _VERSE.match(line)
            if m is None:
                raise SystemExit(f"unexpected line from `bible`: {line[:80]!r}")
            verses.append((m.group(1), int(m.group(2)), m.group(4)))
    if len(verses) != VERSES:
        raise SystemExit(f"`bible` printed {len(verses)} verses; the New Testament has {VERSES}")
    return verses


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def split_of(chapter_index: int) -> str:
    return {8: "valid", 9: "test"}.get(chapter_index % 10, "train")


def build(out: Path, bible: str = "bible", check: bool = True) -> dict[str, str]:
    lines: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    chapter, last = -1, None
    for book, number, text in read_verses(bible):
        if (book, number) != last:
            chapter, last = chapter + 1, (book, number)
        lines[split_of(chapter)].append(normalise(text))
    texts = {split: ("\n".join(rows) + "\n").encode("ascii") for split, rows in lines.items()}
    digests = {split: hashlib.sha256(data).hexdigest() for split, data in texts.items()}
    if check and digests != TEXT_SHA256:
        raise SystemExit(f"the built text differs from the recorded one: {digests} (--no-check writes it anyway)")
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        data = texts[split]
        packed = bz2.compress(data, compresslevel=9)
        tmp = out / f".{split}.txt.bz2.tmp"
        tmp.write_bytes(packed)
        tmp.replace(out / f"{split}.txt.bz2")  # a reader never sees half a file
        print(f"{split}: {len(rows)} lines, {sum(len(r.split()) for r in rows)} words, {len(data)} bytes, "
              f"{len(packed)} bytes compressed, sha256 of the text {digests[split]}")
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--bible", default="bible", help="the reader program (default: bible on PATH)")
    parser.add_argument("--no-check", action="store_true", help="write the corpus even if its text differs from "
                        "TEXT_SHA256")
    args = parser.parse_args()
    build(args.out, args.bible, check=not args.no_check)


if __name__ == "__main__":
    main()
