"""Hardware half: bundle reader, Amaranth accelerator generator, board builds. Never imports torch."""
