import sys

from aioxdp.cli import main

sys.exit(main())
