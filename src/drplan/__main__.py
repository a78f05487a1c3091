"""`python -m drplan`: the same entry point as the `drplan` console script (the daemon
runs its jobs this way, with the interpreter it runs on)."""

from drplan.cli import main

main()
