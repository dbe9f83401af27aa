"""`python -m gateway.cli`: the same as the `phigate` command."""

from gateway.cli import main

main()
