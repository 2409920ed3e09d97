"""Everything that optimises parameters (layer 5 of DESIGN.md): codec and decoder training
(``codec``), training through a channel (``through_channel``: decoder fine-tuning, channel-optimised
codebooks), the learned receiver (``receiver``) and ``prepare`` (prior, assignment, receiver
tuning). Nothing below this package imports it."""
