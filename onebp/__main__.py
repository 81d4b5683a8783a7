import sys

from onebp.cli import main

sys.exit(main())
