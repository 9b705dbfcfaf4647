#!/usr/bin/env python
"""Run one experiment: python experiments/run.py CONFIG [--set a.b=c ...] [--stage train|evaluate|all] [--resume].

A thin wrapper over `keras_colour.experiment` (also `keras-colour train`).
"""

import sys

from keras_colour.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
