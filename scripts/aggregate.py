"""Records -> every artefact of the paper they allow; see tasks/analysis/cli.py or --help.

    python scripts/aggregate.py RESULTS_DIR [--only fig3_left,table1] [--optimizers nero,lion]
"""

import sys

from tasks.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
