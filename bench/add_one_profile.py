"""Where the time of "add one document, then retrieve it" goes: pyinstrument over scale_bench's add-one step, on a
copy of a scale_bench home, with this checkout's code or another's (`--code /work/main`: before the lexical delta).

    flock /work/heavy.lock .venv/bin/python bench/add_one_profile.py --home /work/scale_data/home-100000 \\
        --code /work/main --out /work/scale_data/profile-main-100k.txt
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--code", type=Path, default=REPO)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    copy = args.home.with_name(args.home.name + "-profile")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(args.home, copy)
    program = ("import json,sys; sys.path.insert(0, %r); sys.path.insert(1, %r); import scale_bench as b; "
               "print(json.dumps(b.add_one(b.Path(%r), 'prof')))") % (str(args.code), str(REPO / "bench"), str(copy))
    try:
        subprocess.run([sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(args.out), "-c", program],
                       check=True, cwd=str(args.code), env={**os.environ, "PYTHONPATH": str(args.code),
                                                            "HF_HUB_OFFLINE": "1"})
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    print(args.out.read_text()[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
