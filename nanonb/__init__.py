"""nanonb: few-shot meta-learning for nanotechnology and materials discovery."""

__version__ = "0.1.0"
