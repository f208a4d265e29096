"""The keys of the JSON models the panel reads (docs/api.md; jupyter_ext/src/wire.ts mirrors them),
for the model and the handler tests alike."""

SUMMARY_KEYS = {"run_id", "notebook", "engine", "status", "created", "started", "finished", "parameters"}
STEP_RUN_KEYS = {"name", "status", "duration_s", "cached", "attempts", "started", "finished", "stdout", "stderr",
                 "error", "stale"}
CLUSTER_KEYS = {"status", "kind", "scheduler_address", "dashboard_link", "dashboard", "workers", "threads",
                "memory_used", "memory_limit", "cpu", "tasks", "adaptive"}
