"""``python -m pocdojo``: the ``pocdojo`` command."""

from pocdojo.cli import main

main()
