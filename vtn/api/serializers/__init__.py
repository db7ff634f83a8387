"""Wire formats: one serializer module per OpenADR version over the one internal model."""
