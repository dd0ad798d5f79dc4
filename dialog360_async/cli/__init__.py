"""The ``dialog360`` command line: everything a person types, in one place.

``_main`` parses the command line and runs the one-shot commands and broadcasts, ``_input``
reads broadcast and contact files, ``_distributed`` holds the scale-out commands and ``_demo``
the offline demo and the live progress display.
"""

from ._main import main

__all__ = ["main"]
