"""The local engine: the job graph on one machine, with a local process pool."""
