"""Worker of the video super-resolution service: split, upscale and merge stages, and a
local engine that runs the same job graph as AWS Batch on one machine.

Everything under this package must run on Python 3.10 with torch 1.13 (the Inf1 image).
"""

__version__ = "0.1.0"
