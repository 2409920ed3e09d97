"""A vqcodec plug-in: a small FSQ image tokenizer (stride 8, levels 8-5-5-5, K = 1000 codes).

The entry point ``fsq-f8`` in the group ``vqcodec.codecs`` names :func:`build`."""

from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights" / "fsq-f8.safetensors"


def build(weights: str | None = None):
    """The tokenizer with its weights (None: the packaged fsq-f8.safetensors), wrapped for vqcodec."""
    from safetensors.torch import load_file

    import vqcodec.api as vq
    from vqcodec_fsq_example.model import F, FSQTokenizer

    path = Path(weights) if weights is not None else WEIGHTS
    module = FSQTokenizer()
    module.load_state_dict(load_file(str(path)))
    module.eval()
    return vq.wrap(module, f=F, K=module.K, encode="encode", decode="decode", codebooks=module.codebook,
                   decode_embeddings="decode_codes", name="fsq-f8", weights=str(path))
