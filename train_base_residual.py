"""The design guide's entry point: `python train_base_residual.py --dataset ... --batch_size ...`.

Equivalent to `echodepth train ...`.
"""

import sys

from echodepth.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
