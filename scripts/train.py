"""Train one cell, or a sweep with -m. See `python scripts/train.py --help` and README.md.

    python scripts/train.py task=mnist_mlp optimizer=nero scale=smoke
"""

from tasks.runner.cli import main

if __name__ == "__main__":
    main()
