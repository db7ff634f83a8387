"""GB flexibility dispatch profile over OpenADR 3: the registry (network operators, FSPs,
dispatch units, contracts, products), dispatch instructions with signed revisions, and
their publication as OpenADR events through ``vtn.services``. See
docs/gb-dispatch-profile.md."""
