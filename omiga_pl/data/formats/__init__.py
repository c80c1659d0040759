"""One module per on-disk dataset format; ``native`` is the one omiga_pl writes."""
