"""The ``lumigrad`` command line: thin commands that call the library."""
