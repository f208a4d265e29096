"""The extension as jupyter_server 2 runs it: an `ExtensionApp`, because the server calls a shutdown
hook (`stop_extension`) on those only; a module-level extension point gets none, and the run processes
it started would outlive the server, their runs left `running`.

Kept out of the package's `__init__`: importing jupyter_server there would slow every run process.
"""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp

from . import load_server_extension, unload_server_extension


class NbscaleExtension(ExtensionApp):
    name = "nbscale"

    def initialize_handlers(self):
        load_server_extension(self.serverapp)

    async def stop_extension(self):
        await unload_server_extension(self.serverapp)
