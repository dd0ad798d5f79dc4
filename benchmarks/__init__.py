"""Benchmarks of dialog360_async against hand-written aiohttp and pywa: ``python -m benchmarks``.

Every comparison is a ratio from paired, interleaved runs against the bundled fake server,
which runs in its own process on its own CPU. See ``python -m benchmarks --help``.
"""
