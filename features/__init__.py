"""Feature declarations and the engine that computes them in batch and in the stream."""
