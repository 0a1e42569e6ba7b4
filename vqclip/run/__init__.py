"""One generation in three stages: `prepare` checks the config, its input images and its models
as their configs describe them (no weight read, nothing downloaded) and describes the run,
`build` takes the models from the caller's `Models` (loading those it lacks) and assembles the
engine, `Run.execute` creates the run folders and runs the loop."""
