"""The argument parser of every `gpugrad` command line, the benchmarks' included: a usage
error is one line on stderr and exit code 2, as every other error of the command line."""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2), not the usage text and the error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
