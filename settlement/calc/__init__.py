"""Pure settlement calculations: no Django, no ORM, no I/O.

Conventions shared by every module here:

* power in kW, energy in kWh, money in GBP, all as ``Decimal`` (never float);
* power positive = consumption/import from the network, negative = export (UFTP);
* a settlement period is [start, end) in UTC, keyed by its UTC start; Europe/London is
  used only to find day boundaries and wall-clock times;
* missing data (``None`` or an absent key) is never treated as zero: it produces an
  explicit held / not-computable result.

Modules: :mod:`.periods` (settlement periods and days), :mod:`.baselines` (what the unit
would have done), :mod:`.delivery` (delivered flexibility, deficiency, performance),
:mod:`.money` (payments, penalties, rounding). ``docs/settlement.md`` explains the formulas.
"""
