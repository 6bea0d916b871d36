"""`python -m service.cli` runs the `ftq` command line."""

from __future__ import annotations

from service.cli import main

main()
