"""Ray actors: the engine host and the agents that talk through it."""
