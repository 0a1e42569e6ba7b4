"""One generation in three stages: `prepare` checks the config and describes the run (no model
touched), `build` loads the models and assembles the engine, `Run.execute` creates the run
folders and runs the loop."""
