"""`python -m tdgui` runs the command line (and the desktop app with no subcommand)."""

from tdgui.cli import main

raise SystemExit(main())
