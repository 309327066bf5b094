"""Media I/O with PyAV: probing, colour conversion and the encoder set-up shared by stages."""
