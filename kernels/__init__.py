"""nbscale run time: step executor, marshalling, artifact and run stores, engines."""

from . import own_code  # noqa: F401,E402 - its digest is of the code imported with the package, taken now
