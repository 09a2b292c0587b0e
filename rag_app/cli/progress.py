"""Progress bars for the CLI (tqdm on stderr), shared by the subcommands."""

from __future__ import annotations

import sys


class IngestBar:
    """Renders ingest `Progress` snapshots: files done of total, chunks written, rate and ETA."""

    def __init__(self, desc: str = "ingest", disable: bool = False):
        self.desc = desc
        self.disable = disable
        self._bar = None

    def __call__(self, progress) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=progress.files_total, desc=self.desc, unit="file", file=sys.stderr,
                             disable=self.disable, dynamic_ncols=True)
        self._bar.n = progress.files_done
        self._bar.set_postfix_str(f"chunks={progress.chunks_written} {progress.current[-40:]}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
