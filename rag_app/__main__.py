import sys

from rag_app.cli import main

sys.exit(main())
