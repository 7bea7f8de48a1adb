"""`python -m gpugrad ...`: the `gpugrad` command line, for where its script is not on PATH."""

from gpugrad.cli import main

raise SystemExit(main())
