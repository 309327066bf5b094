"""The Pulumi program of the video super-resolution service: one module per concern."""
