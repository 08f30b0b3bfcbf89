"""`python -m gateway.client`: the `ovngw` command without the installed entry point."""

import sys

from gateway.client.cli import main

sys.exit(main())
