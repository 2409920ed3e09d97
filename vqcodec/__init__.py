"""vqcodec: send images over noisy digital links with a learned vector-quantised codec."""

__version__ = "0.1.0"
