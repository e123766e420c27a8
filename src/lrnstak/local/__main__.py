"""`python -m lrnstak.local`: the embedded stack (what `make run` starts)."""

from lrnstak.local.server import main

main()
