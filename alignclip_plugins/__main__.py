import sys

from alignclip_plugins.cli import main

sys.exit(main())
