"""CRCs (3GPP TS 38.212 5.1) and transport blocks (38.212 5.1, 5.2.2, 5.4.2.1, 7.2).

``LDPC5GTransportBlock(payload_bits, coded_bits)`` encodes a payload of any
length A into exactly G coded bits: TB CRC (CRC-24A if A > 3824, else
CRC-16, as 7.2.1), base graph by the 7.2.2 rule on A and R = A / G,
segmentation into C code blocks of K' bits each with a CRC-24B when
C > 1 (C = ceil(B / (K_cb - 24)), K_cb = 8448 / 3840), and E_r = floor or
ceil(G / C) coded bits per block (5.4.2.1 with N_L = 1).  Where B' = B + 24 C
is not a multiple of C (the standard's TB sizes always are) the first
B' mod C blocks carry one bit more.  Decoding returns the payload bits, the
payload's a-posteriori LLRs, the per-block CRC results and the TB CRC
result.
"""
from __future__ import annotations

import dataclasses
import functools

import numba
import numpy as np

from vqcodec.ldpc.code import LDPC5GCode, _as_bits_2d, _as_llr_2d
from vqcodec.ldpc.graphs import _K_CB, _check_bg, base_graph_rule

# ---------------------------------------------------------------------------
# CRC (38.212 5.1)
# ---------------------------------------------------------------------------


# generator polynomials without the leading term, degree L
CRC_POLYNOMIALS: dict[str, tuple[int, int]] = {
    "CRC24A": (0x864CFB, 24),  # D^24+D^23+D^18+D^17+D^14+D^11+D^10+D^7+D^6+D^5+D^4+D^3+D+1
    "CRC24B": (0x800063, 24),  # D^24+D^23+D^6+D^5+D+1
    "CRC24C": (0xB2B117, 24),  # D^24+D^23+D^21+D^20+D^17+D^15+D^13+D^12+D^8+D^4+D^2+D+1
    "CRC16": (0x1021, 16),  # D^16+D^12+D^5+1
    "CRC11": (0x621, 11),  # D^11+D^10+D^9+D^5+1
    "CRC6": (0x21, 6),  # D^6+D^5+1
}


def _crc_params(name: str) -> tuple[int, int]:
    try:
        return CRC_POLYNOMIALS[name]
    except KeyError:
        raise ValueError(f"unknown CRC {name!r}; known: {', '.join(CRC_POLYNOMIALS)}") from None


@numba.njit(cache=True)
def _crc_kernel(bits, poly, L):  # pragma: no cover - compiled
    """CRC register (a(D) D^L mod g(D)) of each row of uint8 bits (B, K)."""
    B = bits.shape[0]
    K = bits.shape[1]
    mask = (np.int64(1) << L) - 1
    out = np.empty(B, np.int64)
    for b in range(B):
        reg = np.int64(0)
        for j in range(K):
            fb = ((reg >> (L - 1)) ^ np.int64(bits[b, j])) & 1
            reg = (reg << 1) & mask
            if fb:
                reg ^= poly
        out[b] = reg
    return out


def _crc_register_to_bits(reg: np.ndarray, L: int) -> np.ndarray:
    return ((reg[:, None] >> np.arange(L - 1, -1, -1, dtype=np.int64)) & 1).astype(np.uint8)


def crc_5g(bits, name: str = "CRC24A") -> np.ndarray:
    """CRC parity bits p_0..p_{L-1} (38.212 5.1) of bits (K,) or (B, K) -> uint8 (L,) / (B, L)."""
    poly, L = _crc_params(name)
    a = np.asarray(bits)
    b, one_d = _as_bits_2d(a, a.shape[-1] if a.ndim else -1)
    p = _crc_register_to_bits(_crc_kernel(b, np.int64(poly), np.int64(L)), L)
    return p[0] if one_d else p


def crc_5g_reference(bits, name: str = "CRC24A") -> np.ndarray:
    """numpy reference of ``crc_5g`` (polynomial long division), 1-D input."""
    poly, L = _crc_params(name)
    b = np.asarray(bits, np.uint8)
    g = np.array([1] + [(poly >> (L - 1 - i)) & 1 for i in range(L)], np.uint8)
    rem = np.concatenate([b, np.zeros(L, np.uint8)])
    for i in range(b.size):
        if rem[i]:
            rem[i : i + L + 1] ^= g
    return rem[b.size :].copy()


def attach_crc_5g(bits, name: str = "CRC24A") -> np.ndarray:
    """bits followed by their CRC parity bits (1-D or (B, K))."""
    b = np.asarray(bits, np.uint8)
    return np.concatenate([b, crc_5g(b, name)], axis=-1)


def check_crc_5g(bits_with_crc, name: str = "CRC24A"):
    """True where the last L bits are the CRC of the bits before them (bool or (B,) bool)."""
    poly, L = _crc_params(name)
    a = np.asarray(bits_with_crc)
    b, one_d = _as_bits_2d(a, a.shape[-1] if a.ndim else -1)
    if b.shape[1] < L:
        raise ValueError(f"need at least the {L} CRC bits")
    # bits followed by their CRC form a multiple of g(D): the register ends at zero
    ok = _crc_kernel(b, np.int64(poly), np.int64(L)) == 0
    return bool(ok[0]) if one_d else ok

# ---------------------------------------------------------------------------
# Transport blocks: TB CRC, segmentation, per-block rate matching
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TBDecodeResult:
    """Output of ``LDPC5GTransportBlock.decode``.

    bits: uint8 (A,) or (B, A) decoded payload; llr: its a-posteriori LLRs;
    block_ok: bool (C,) / (B, C) per code block (its CRC-24B when C > 1, the
    TB CRC when C = 1); tb_ok: the TB CRC; iterations: (C,) / (B, C).
    """

    bits: np.ndarray
    llr: np.ndarray
    block_ok: np.ndarray
    tb_ok: np.ndarray | bool
    iterations: np.ndarray


@dataclasses.dataclass(frozen=True)
class LDPC5GTransportBlock:
    """A payload of ``payload_bits`` bits sent in exactly ``coded_bits`` bits.

    ``bits_per_symbol``: Q_m (E_r are multiples of it; bit interleaving per
    block); ``bg``: force a base graph (None: 38.212 7.2.2 rule on A and
    R = A / G); ``tb_crc``: "CRC24A", "CRC16" or None (38.212 7.2.1: CRC-24A
    if A > 3824 else CRC-16).  See the module docstring for the segmentation.
    """

    payload_bits: int
    coded_bits: int
    bits_per_symbol: int = 1
    bg: int | None = None
    tb_crc: str | None = None

    def __post_init__(self):
        A, G, qm = int(self.payload_bits), int(self.coded_bits), int(self.bits_per_symbol)
        for name, v in (("payload_bits", A), ("coded_bits", G), ("bits_per_symbol", qm)):
            object.__setattr__(self, name, v)
        if A < 1:
            raise ValueError("payload_bits must be >= 1")
        if qm < 1 or G < 1 or G % qm:
            raise ValueError(f"coded_bits = {G} must be a positive multiple of bits_per_symbol")
        crc = self.tb_crc if self.tb_crc is not None else ("CRC24A" if A > 3824 else "CRC16")
        if crc not in ("CRC24A", "CRC16"):
            raise ValueError(f"tb_crc must be 'CRC24A', 'CRC16' or None, got {self.tb_crc!r}")
        object.__setattr__(self, "tb_crc", crc)
        if self.bg is None:
            bg = base_graph_rule(A, A / G)  # a large A at R <= 0.25 is BG2, segmented by K_cb = 3840
        else:
            bg = _check_bg(self.bg)
        object.__setattr__(self, "bg", bg)
        _ = self.block_codes  # validate now

    @property
    def tb_crc_length(self) -> int:
        return _crc_params(self.tb_crc)[1]

    @functools.cached_property
    def _segments(self):
        B = self.payload_bits + self.tb_crc_length
        k_cb = _K_CB[self.bg]
        if B <= k_cb:
            C, L = 1, 0
        else:
            L = 24
            C = -(-B // (k_cb - L))
        Bp = B + C * L
        kp = [Bp // C + (1 if r < Bp % C else 0) for r in range(C)]
        qm, G = self.bits_per_symbol, self.coded_bits
        q = G // qm
        n_small = C - q % C
        E = [qm * (q // C) if r < n_small else qm * -(-q // C) for r in range(C)]
        if min(E) < 1:
            raise ValueError(f"{G} coded bits cannot carry {C} code blocks")
        codes = []
        for r in range(C):
            try:
                codes.append(LDPC5GCode(kp[r], E[r], bg=self.bg, bits_per_symbol=qm))
            except ValueError as e:
                raise ValueError(
                    f"payload of {self.payload_bits} bits in {G} coded bits: code block {r} "
                    f"(k = {kp[r]}, n = {E[r]}) is not supported: {e}"
                ) from None
        return C, L, tuple(codes)

    @property
    def num_blocks(self) -> int:
        """C, the number of code blocks."""
        return self._segments[0]

    @property
    def cb_crc_length(self) -> int:
        """24 (CRC-24B per block) when C > 1, else 0."""
        return self._segments[1]

    @property
    def block_codes(self) -> tuple[LDPC5GCode, ...]:
        """The code of each block: (k, n) = (K'_r, E_r)."""
        return self._segments[2]

    @property
    def rate(self) -> float:
        return self.payload_bits / self.coded_bits

    def encode(self, payload) -> np.ndarray:
        """Payload bits (A,) or (B, A) -> coded bits (G,) or (B, G), uint8."""
        a, one_d = _as_bits_2d(payload, self.payload_bits, "payload")
        b = attach_crc_5g(a, self.tb_crc)
        L = self.cb_crc_length
        out, pos = [], 0
        for code in self.block_codes:
            seg = b[:, pos : pos + code.k - L]
            pos += code.k - L
            if L:
                seg = attach_crc_5g(seg, "CRC24B")
            out.append(code.encode(seg))
        c = np.concatenate(out, axis=1)
        return c[0] if one_d else c

    def decode(self, llr, iterations: int = 20, **kwargs) -> TBDecodeResult:
        """Channel LLRs (G,) or (B, G) -> ``TBDecodeResult``; keyword arguments
        go to ``LDPC5GCode.decode`` (schedule, alpha, early_stop, ...)."""
        one_d = np.ndim(llr) == 1
        x = _as_llr_2d(llr, self.coded_bits, np.asarray(llr).dtype)
        L = self.cb_crc_length
        n_words = x.shape[0]
        info_bits, info_llr, ok, iters = [], [], [], []
        pos = 0
        for code in self.block_codes:
            res = code.decode(x[:, pos : pos + code.n], iterations, **kwargs)
            pos += code.n
            if L:
                ok.append(np.asarray(check_crc_5g(res.bits, "CRC24B")).reshape(n_words))
            info_bits.append(res.bits[:, : code.k - L])
            info_llr.append(res.llr[:, : code.k - L])
            iters.append(res.iterations)
        b = np.concatenate(info_bits, axis=1)
        tb_ok = np.asarray(check_crc_5g(b, self.tb_crc)).reshape(n_words)
        block_ok = np.stack(ok, axis=1) if L else tb_ok[:, None].copy()
        A = self.payload_bits
        bits = b[:, :A]
        llr_out = np.concatenate(info_llr, axis=1)[:, :A]
        iters = np.stack(iters, axis=1)
        if one_d:
            return TBDecodeResult(bits[0], llr_out[0], block_ok[0], bool(tb_ok[0]), iters[0])
        return TBDecodeResult(bits, llr_out, block_ok, tb_ok, iters)


def encode_payload(bits, coded_bits: int, **kwargs) -> np.ndarray:
    """Encode a payload (A,) into exactly ``coded_bits`` bits (transport block;
    keyword arguments: bits_per_symbol, bg, tb_crc)."""
    a = np.asarray(bits)
    return LDPC5GTransportBlock(a.shape[-1], coded_bits, **kwargs).encode(a)


def decode_payload(llr, payload_bits: int, iterations: int = 20, *, bits_per_symbol: int = 1,
                   bg=None, tb_crc=None, **kwargs) -> TBDecodeResult:
    """Decode ``encode_payload``'s output from its channel LLRs."""
    x = np.asarray(llr)
    tb = LDPC5GTransportBlock(payload_bits, x.shape[-1], bits_per_symbol, bg, tb_crc)
    return tb.decode(x, iterations, **kwargs)
