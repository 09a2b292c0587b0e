"""Progress bars for the CLI (tqdm on stderr), shared by the subcommands."""

from __future__ import annotations

import sys


class IngestBar:
    """Renders ingest `Progress` snapshots: files done of total, chunks written, rate and ETA, and the OCR pages
    read of the current file while it is OCR'd."""

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
        self._bar.set_postfix_str(postfix(progress), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def postfix(progress) -> str:
    """`chunks=120 OCR page 3/12 scans/contract.pdf`: what the bar shows after its counts."""
    ocr = f"OCR page {progress.pages_done}/{progress.pages_total} " if getattr(progress, "pages_total", 0) else ""
    return f"chunks={progress.chunks_written} {ocr}{progress.current[-40:]}"
