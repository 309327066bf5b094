"""The three worker stages. Each reads the job manifest and is idempotent."""
