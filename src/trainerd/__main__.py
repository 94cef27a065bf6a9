"""`python -m trainerd` is the `trainerd` command."""

import sys

from trainerd.cli import main

sys.exit(main())
