"""The ``dialog360`` command line: everything a person types, in one place.

``_main`` runs the command line, ``_parser`` holds its grammar and help (and the parser class
whose errors never repeat a value), ``_commands`` the one-shot commands, ``_broadcast`` the
resumable broadcast, ``_input`` reads broadcast and contact files, ``_distributed`` holds the
scale-out commands and ``_demo`` the offline demo and the live progress display.
"""

from ._main import main

__all__ = ["main"]
