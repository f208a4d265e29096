"""nbscale run time: step executor, marshalling, artifact and run stores, engines."""
