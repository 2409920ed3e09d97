"""Channel models: bits in, ``Received`` (hard decisions, LLRs) out.

>>> import numpy as np
>>> from channels import get_channel
>>> ch = get_channel("bsc", p=0.01)
>>> rx = ch(np.zeros(8, np.uint8), np.random.default_rng(0))
>>> rx.hard.dtype, rx.llr.dtype
(dtype('int8'), dtype('float32'))
"""

from . import capacity, modulation
from .awgn import AWGN, ebn0_to_esn0_db, esn0_to_ebn0_db
from .base import LLR_CLIP, REGISTRY, Channel, Received, get_channel, register
from .bsc import BinarySymmetric
from .burst import GilbertElliott
from .erasure import BinaryErasure, PacketErasure
from .fading import RayleighBlockFading
from .modulation import DEMAPPINGS, MODULATIONS, Modulation, get_modulation

__all__ = [
    "LLR_CLIP",
    "REGISTRY",
    "Channel",
    "Received",
    "get_channel",
    "register",
    "BinarySymmetric",
    "BinaryErasure",
    "PacketErasure",
    "AWGN",
    "GilbertElliott",
    "RayleighBlockFading",
    "ebn0_to_esn0_db",
    "esn0_to_ebn0_db",
    "capacity",
    "modulation",
    "Modulation",
    "MODULATIONS",
    "DEMAPPINGS",
    "get_modulation",
]
