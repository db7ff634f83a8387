"""HTTP layer of the VTN: thin views, one serializer module per OpenADR version."""
