"""5G NR LDPC codes (3GPP TS 38.212) with fast numba belief-propagation decoders.

Conventions (see DESIGN.md): bits are ``uint8`` arrays of 0/1; LLRs are
``llr = log P(bit=0) / P(bit=1)`` (positive: 0 is more likely).  Sionna uses
the opposite sign ("logits") at its interface: ``sionna_input = -llr``.

* ``graphs``: base graphs 1 and 2, their selection and lifting, the lifted graph and its encoder;
* ``decoders``: layered min-sum and flooding decoders (numba) with their numpy references;
* ``code``: one code block, ``LDPC5GCode(k, n)`` (rate matching, encode, decode) and
  ``LDPCDecodeResult``;
* ``transport``: CRCs and transport blocks (``LDPC5GTransportBlock``: TB CRC, segmentation into
  code blocks), ``encode_payload`` / ``decode_payload``.

The names below are the public interface; import them from ``vqcodec.ldpc``.
"""

from vqcodec.ldpc.code import LDPC5GCode, LDPCDecodeResult
from vqcodec.ldpc.decoders import FIXED_CHANNEL_LIMIT, FIXED_SCALE
from vqcodec.ldpc.graphs import (
    LIFTING_SETS,
    LIFTING_SIZES,
    base_graph,
    base_graph_rule,
    select_base_graph,
    select_lifting,
)
from vqcodec.ldpc.transport import (
    CRC_POLYNOMIALS,
    LDPC5GTransportBlock,
    TBDecodeResult,
    attach_crc_5g,
    check_crc_5g,
    crc_5g,
    crc_5g_reference,
    decode_payload,
    encode_payload,
)

__all__ = [
    "LIFTING_SETS",
    "LIFTING_SIZES",
    "CRC_POLYNOMIALS",
    "FIXED_SCALE",
    "FIXED_CHANNEL_LIMIT",
    "base_graph",
    "base_graph_rule",
    "select_base_graph",
    "select_lifting",
    "LDPC5GCode",
    "LDPCDecodeResult",
    "LDPC5GTransportBlock",
    "TBDecodeResult",
    "encode_payload",
    "decode_payload",
    "crc_5g",
    "crc_5g_reference",
    "attach_crc_5g",
    "check_crc_5g",
]
