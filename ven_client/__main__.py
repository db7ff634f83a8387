import sys

from ven_client.cli import main

sys.exit(main())
