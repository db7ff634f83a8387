"""The OpenADR wire formats, one module per version over the one internal model
(``v31.Wire31``, ``v301.Wire301``, their shared ``base``). Below the API: the views parse
and render with them, and so do notifications, the demo data and the dispatch profile."""
