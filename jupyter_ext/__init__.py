"""nbscale's JupyterLab server extension and front end (see issue: JupyterLab extension)."""
