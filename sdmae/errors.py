"""The package's error base class.

Errors the user can fix (bad input files, settings or arguments) derive from
:class:`SdmaeError`; the ``sdmae`` command prints them as one line and exits
with status 2, while any other exception, a bug, keeps its traceback. It
derives from ValueError, which these errors were before it existed.
"""


class SdmaeError(ValueError):
    """Bad input, data or settings; the message names the file, argument or setting."""
